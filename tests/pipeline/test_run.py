import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from kcompress.pipeline import PruneStage, run_pipeline
from tests.helpers import tiny_bert_classifier
from tests.pipeline.conftest import tiny_config

STAGE_FOLDERS = ["01_teacher", "02_distill", "03_prune", "04_qat", "05_export"]
STAGE_SECTIONS = ("teacher", "distill", "prune", "qat", "export")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    config = tiny_config(tmp)
    return config, run_pipeline(config, tmp / "run", verbose=0)


def _copy_of(result, tmp_path):
    """A copy of the module's finished run folder, for a test that reruns stages in it."""
    return shutil.copytree(result.out, tmp_path / "run")


def test_every_stage_writes_its_folder_and_the_report(finished):
    config, result = finished
    out = result.out
    assert [row["stage"] for row in result.rows] == ["teacher", "distill", "prune", "qat", "export"]
    assert STAGE_FOLDERS == sorted(name for name in os.listdir(out) if name[:2].isdigit())
    assert not [name for name in os.listdir(out) if name.endswith((".partial", ".stale"))]
    export = result.rows[-1]
    assert export["full_integer"] and export["mode"] == "int8"
    assert os.path.isfile(result.tflite_path) and result.tflite_path.endswith("model_int8.tflite")
    assert open(os.path.join(out, "05_export", "labels.txt")).read().split() == ["fresh", "rotten"]
    assert "[CLS]" in open(os.path.join(out, "05_export", "vocab.txt")).read().split()
    assert "Edge TPU" in open(os.path.join(out, "05_export", "edgetpu.txt")).read()
    with open(result.report_png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    report = open(result.report_md).read()
    assert result.table in report and "| distill |" in report
    assert json.load(open(os.path.join(out, "report.json")))["rows"][0]["stage"] == "teacher"


def test_measurements_are_consistent(finished):
    _, result = finished
    teacher, distill, prune, qat, export = result.rows
    assert distill["params"] < teacher["params"]  # One layer of two.
    assert prune["params"] == distill["params"] == qat["params"] == export["params"]  # Not the QAT ranges and masks.
    for row in (teacher, distill, prune, export):
        assert 0.0 <= row["accuracy"] <= 1.0 and row["size_mb"] > 0 and row["gzip_mb"] <= row["size_mb"]
    assert qat["latency_ms"] is None and qat["size_mb"] is None and export["latency_ms"] > 0
    assert export["agreement_with_keras"] >= 0.8


def test_pruned_stage_holds_the_sparsity(finished):
    import keras

    _, result = finished
    model = keras.models.load_model(os.path.join(result.out, "03_prune", "model.keras"))
    kernel = model.backbone.transformer_layers[0]._feedforward_intermediate_dense.kernel
    np.testing.assert_allclose(np.mean(np.asarray(kernel) == 0), 0.5, atol=0.05)


def test_qat_stage_file_loads_as_a_qat_model_with_its_preprocessor(finished):
    import keras

    from kcompress import quantization

    _, result = finished
    model = keras.models.load_model(os.path.join(result.out, "04_qat", "model.keras"))
    assert type(model).__name__ == "BertTextClassifier" and model.preprocessor is not None
    assert len(quantization.quantization_wrappers(model)) > 0
    assert model.predict(["a fine film", "a dull one"], verbose=0).shape == (2, 2)


def test_a_second_run_resumes_everything_without_rewriting(finished):
    config, result = finished
    stamps = {name: os.stat(os.path.join(result.out, name, "stage.json")).st_mtime_ns for name in STAGE_FOLDERS}
    again = run_pipeline(config, result.out, verbose=0)
    assert again.resumed == ("teacher", "distill", "prune", "qat", "export")
    assert again.rows == result.rows
    for name, stamp in stamps.items():
        assert os.stat(os.path.join(result.out, name, "stage.json")).st_mtime_ns == stamp


def test_changed_settings_rerun_that_stage_and_later_ones(finished, capsys, tmp_path):
    config, result = finished
    changed = dataclasses.replace(config, prune=dataclasses.replace(config.prune, sparsity=0.75))
    again = run_pipeline(changed, _copy_of(result, tmp_path), verbose=1)
    assert again.resumed == ("teacher", "distill")
    assert "[3/5] prune\n" in capsys.readouterr().out


def test_export_for_cpu_reruns_the_export_stage_only(finished, tmp_path):
    config, result = finished
    cpu = dataclasses.replace(config, export=dataclasses.replace(config.export, float_ops=("SOFTMAX", "GELU")))
    out = _copy_of(result, tmp_path)
    again = run_pipeline(cpu, out, verbose=0)
    assert again.resumed == ("teacher", "distill", "prune", "qat")
    export = again.rows[-1]
    assert export["float_ops"] == {"GELU": 1, "SOFTMAX": 1}  # The 1-layer student.
    assert not export["full_integer"] and export["latency_kind"] == "int8 for CPU .tflite"
    assert export["agreement_with_keras"] >= 0.8
    # The Edge TPU report now finds float32 tensors, which the full-int8 file has none of.
    assert "float32" in export["edgetpu_verdict"] and "float32" not in result.rows[-1]["edgetpu_verdict"]
    assert export["edgetpu_verdict"] in open(os.path.join(out, "05_export", "edgetpu.txt")).read()


def test_folders_of_an_older_qat_format_are_redone(finished, tmp_path):
    # A run folder written before the QAT stage's format 2 holds a model.keras whose wrappers have
    # range variables this version's do not: it is redone rather than failing to load.
    config, result = finished
    out = _copy_of(result, tmp_path)
    for name, sections in (("04_qat", STAGE_SECTIONS[:4]), ("05_export", STAGE_SECTIONS)):
        path = os.path.join(out, name, "stage.json")
        done = json.loads(open(path).read())
        assert done["fingerprint"] == config.fingerprint(*sections) + "-qat2"
        done["fingerprint"] = config.fingerprint(*sections)  # What the earlier version wrote.
        with open(path, "w") as f:
            json.dump(done, f)
    again = run_pipeline(config, out, verbose=0)
    assert again.resumed == ("teacher", "distill", "prune")
    assert run_pipeline(config, out, verbose=0).resumed == ("teacher", "distill", "prune", "qat", "export")


def test_skipped_stages_pass_the_model_through(tmp_path):
    config = tiny_config(tmp_path)
    config = dataclasses.replace(
        config,
        distill=dataclasses.replace(config.distill, skip=True),
        prune=PruneStage(skip=True),
        qat=dataclasses.replace(config.qat, skip=True),
    )
    result = run_pipeline(config, tmp_path / "run", verbose=0)
    assert [row["stage"] for row in result.rows] == ["teacher", "export"]
    assert sorted(n for n in os.listdir(result.out) if n[:2].isdigit()) == ["01_teacher", "02_export"]
    export = result.rows[-1]
    # Post-training int8 calibrated on training texts; without QAT some ops stay float.
    assert export["mode"] == "int8" and export["agreement_with_keras"] > 0


def test_output_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="Expected an output folder, not a file"):
        run_pipeline(tiny_config(tmp_path), tmp_path / "file")


def test_model_without_preprocessor_is_refused(tmp_path):
    path = tmp_path / "bare.keras"
    tiny_bert_classifier(layers=1, width=8, vocabulary=20).save(path)
    config = dataclasses.replace(tiny_config(tmp_path), model=str(path))
    with pytest.raises(ValueError, match="Expected a keras-hub text classifier saved with its preprocessor"):
        run_pipeline(config, tmp_path / "run", verbose=0)


def test_structured_pruning_stage_shrinks_the_student(tmp_path):
    config = tiny_config(tmp_path, prune=PruneStage(kind="structured", heads=0.5, ffn=0.5, epochs=1, batch_size=16))
    result = run_pipeline(config, tmp_path / "run", verbose=0)
    _, distill, prune, qat, export = result.rows
    assert prune["params"] < distill["params"]
    assert export["full_integer"] and os.path.isfile(result.tflite_path)
    again = run_pipeline(config, tmp_path / "run", verbose=0)  # The shrunk model reloads for resuming.
    assert again.resumed == ("teacher", "distill", "prune", "qat", "export")
