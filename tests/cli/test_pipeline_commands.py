"""`kcompress demo` and `kcompress compress` against a stand-in `kcompress.pipeline`.

The stand-in follows the contract the CLI relies on (PipelineConfig.demo /
from_file, dataclasses.replace(config, model=...), load_data(config) ->
data with class_names (an ImageData for images), run_pipeline(config, out_dir, verbose=1) -> result
with table, tflite_path, report_md, report_png),
so these tests check argument handling whether or not the real module exists.
"""

import dataclasses
import json
import sys
import types

import keras
import pytest

from tests.cli.clihelpers import assert_usage_error


@dataclasses.dataclass(frozen=True)
class _Config:
    model: str = "minilm"
    quick: bool = False
    epochs: int = 1

    @classmethod
    def demo(cls, quick=False):
        return cls(quick=quick)

    @classmethod
    def from_file(cls, path):
        with open(path) as f:
            content = json.load(f)
        unknown = sorted(set(content) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"Expected config keys in ('model', 'quick', 'epochs'). Received: keys={unknown}")
        return cls(**content)


@pytest.fixture
def pipeline(monkeypatch):
    """The stand-in module; ``pipeline.calls`` records every `run_pipeline` call."""
    module = types.ModuleType("kcompress.pipeline")
    module.calls = []

    def run_pipeline(config, out_dir, verbose=1):
        module.calls.append((config, out_dir, verbose))
        return types.SimpleNamespace(
            table="| stage | accuracy |\n| --- | --- |\n| int8 | 0.78 |",
            tflite_path=f"{out_dir}/model_int8.tflite",
            report_md=f"{out_dir}/report.md",
            report_png=f"{out_dir}/report.png",
        )

    module.PipelineConfig = _Config
    module.run_pipeline = run_pipeline
    module.load_data = lambda config: types.SimpleNamespace(class_names=("neg", "pos"))
    module.ImageData = type("ImageData", (), {})
    monkeypatch.setitem(sys.modules, "kcompress.pipeline", module)
    return module


def test_demo_quick_prints_table_and_paths(cli, pipeline, tmp_path):
    out = tmp_path / "run"
    run = cli("demo", "--quick", "--out", out)
    assert run.code == 0, run.err
    assert pipeline.calls == [(_Config(quick=True), str(out), 1)]
    assert "| int8 | 0.78 |" in run.out
    assert f"{out}/model_int8.tflite" in run.out and f"{out}/report.png" in run.out
    assert out.is_dir()


def test_demo_default_out(cli, pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("demo").code == 0
    assert cli("demo", "--quick").code == 0
    assert [call[1] for call in pipeline.calls] == ["runs/demo", "runs/demo-quick"]
    assert pipeline.calls[0][0] == _Config(quick=False)


def test_demo_out_is_a_file_exit_2(cli, pipeline, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(cli("demo", "--out", blocker), "--out to be a directory")
    assert pipeline.calls == []


def test_compress_overrides_model(cli, pipeline, tmp_path, mlp_keras):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"epochs": 3}))
    run = cli("compress", "--model", mlp_keras, "--config", config, "--out", tmp_path / "run")
    assert run.code == 0, run.err
    assert pipeline.calls == [(_Config(model=mlp_keras, epochs=3), str(tmp_path / "run"), 1)]
    assert "report.md" in run.out


def test_compress_without_model_uses_the_config(cli, pipeline, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": "minilm"}))
    assert cli("compress", "--config", config, "--out", tmp_path / "run").code == 0
    assert pipeline.calls[0][0].model == "minilm"


def test_compress_usage_errors_exit_2(cli, pipeline, tmp_path, mlp_keras):
    good = tmp_path / "c.json"
    good.write_text("{}")
    out = ("--out", tmp_path / "run")
    assert_usage_error(cli("compress", *out), "Expected a value for --config")
    assert_usage_error(cli("compress", "--config", good), "Expected a value for --out")
    assert_usage_error(cli("compress", "--config", tmp_path / "none.json", *out), "--config to be an existing file")
    wrong_kind = tmp_path / "c.txt"
    wrong_kind.write_text("{}")
    assert_usage_error(cli("compress", "--config", wrong_kind, *out), "--config to be a .json or .yaml or .yml file")
    assert_usage_error(
        cli("compress", "--model", tmp_path / "none.keras", "--config", good, *out), "--model to be an existing file"
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epoch": 3}))
    assert_usage_error(
        cli("compress", "--config", bad, *out), f"compress: --config {bad}: Expected config keys", "epoch"
    )
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    assert_usage_error(cli("compress", "--config", garbled, *out), f"--config {garbled}: Expecting property name")
    not_a_mapping = tmp_path / "number.json"
    not_a_mapping.write_text("1")  # The stand-in raises TypeError on it: any error is still a bad --config.
    assert_usage_error(
        cli("compress", "--config", not_a_mapping, *out), "--config to be a valid pipeline config", "(TypeError:"
    )
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert_usage_error(cli("compress", "--config", good, "--out", blocker), "--out to be a directory")
    assert pipeline.calls == []


def test_pipeline_failure_is_one_line_exit_1(cli, pipeline, tmp_path):
    def fail(config, out_dir, verbose=1):
        raise ValueError("Expected a BertTextClassifier. Received: model=<Sequential>")

    pipeline.run_pipeline = fail
    assert_usage_error(cli("demo", "--out", tmp_path), "kcompress demo: Expected a BertTextClassifier", code=1)


def test_missing_pipeline_module_exit_1(cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kcompress.pipeline", None)
    assert_usage_error(
        cli("demo", "--out", tmp_path), "kcompress.pipeline is not part of this kcompress install", code=1
    )


def test_compress_process_flags_usage_errors_exit_2(cli, pipeline, tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    base = ("compress", "--config", config, "--out", tmp_path / "run")
    group = ("--job-addresses", "127.0.0.1:1234", "--num-processes", "2")
    assert_usage_error(cli(*base, "--num-processes", "0"), "Expected --num-processes to be an integer >= 1")
    assert_usage_error(cli(*base, "--process-id", "-1"), "Expected --process-id to be an integer >= 0")
    assert_usage_error(
        cli(*base, "--job-addresses", "127.0.0.1:1234"),
        "Expected all of --job-addresses, --num-processes and --process-id",
        "missing='--num-processes, --process-id'",
    )
    assert_usage_error(
        cli(*base, "--job-addresses", "127.0.0.1", "--num-processes", "2", "--process-id", "0"),
        "Expected --job-addresses as host:port, or comma-separated host:port items",
    )
    assert_usage_error(
        cli(*base, *group, "--process_id", "2"), "Expected --process-id in [0, 2) for --num-processes=2", "=2"
    )
    assert pipeline.calls == []


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow backend's error")
def test_compress_over_processes_needs_jax(cli, pipeline, tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    run = cli(
        "compress", "--config", config, "--out", tmp_path / "run",
        "--job-addresses", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "0",
    )  # fmt: skip
    assert_usage_error(run, "Expected the JAX backend (KERAS_BACKEND=jax)", "keras-team/keras/issues/20585")
    assert pipeline.calls == []
