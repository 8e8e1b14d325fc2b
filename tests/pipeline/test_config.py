import json

import pytest

from kcompress.pipeline import PipelineConfig, PruneStage


def test_defaults_and_demo_settings_are_valid():
    assert PipelineConfig().prune.kind == "unstructured"
    quick, full = PipelineConfig.demo(quick=True), PipelineConfig.demo()
    assert quick.train_size < full.train_size
    assert full.model == "minilm" and full.data == "rotten_tomatoes"


def test_json_and_yaml_files(tmp_path):
    values = {"train_size": 100, "distill": {"student_layers": 3, "alpha": 1.0}, "prune": {"kind": "structured"}}
    (tmp_path / "c.json").write_text(json.dumps(values))
    (tmp_path / "c.yaml").write_text(
        "train_size: 100\ndistill:\n  student_layers: 3\n  alpha: 1.0\nprune:\n  kind: structured\n"
    )
    from_json = PipelineConfig.from_file(tmp_path / "c.json")
    assert from_json == PipelineConfig.from_file(tmp_path / "c.yaml")
    assert from_json.distill.student_layers == 3 and from_json.prune.kind == "structured"
    assert PipelineConfig.from_dict(from_json.to_dict()) == from_json


def test_export_float_ops_from_a_file_are_a_tuple(tmp_path):
    (tmp_path / "c.yaml").write_text("export:\n  float_ops: [SOFTMAX, GELU]\n")
    config = PipelineConfig.from_file(tmp_path / "c.yaml")
    assert config.export.float_ops == ("SOFTMAX", "GELU")
    assert PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.fingerprint("export") != PipelineConfig().fingerprint("export")


def test_fingerprint_follows_the_sections_a_stage_depends_on():
    base = PipelineConfig()
    changed = PipelineConfig(prune=PruneStage(sparsity=0.8))
    assert base.fingerprint("teacher", "distill") == changed.fingerprint("teacher", "distill")
    assert base.fingerprint("teacher", "distill", "prune") != changed.fingerprint("teacher", "distill", "prune")
    assert base.fingerprint("teacher") != PipelineConfig(train_size=10).fingerprint("teacher")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"prune": {"sparsity": 1.0}}, r"Expected prune.sparsity in \[0, 1\). Received: prune.sparsity=1.0"),
        ({"prune": {"kind": "channels"}}, r"Expected prune.kind in \('unstructured', 'structured'\)"),
        ({"distill": {"alpha": 2}}, r"Expected distill.alpha in \[0, 1\]"),
        ({"distill": {"student_layers": 0}}, r"Expected distill.student_layers >= 1"),
        ({"export": {"mode": "int4"}}, r"Expected export.mode in"),
        ({"export": {"float_ops": ["CONV_2D"]}}, r"Expected export.float_ops as a list of names among \('GELU'"),
        ({"export": {"float_ops": "SOFTMAX"}}, r"Received: export.float_ops='SOFTMAX'"),
        (
            {"export": {"mode": "dynamic", "float_ops": ["SOFTMAX"]}},
            r"Expected export.float_ops only with export.mode='int8'. Received: export.mode='dynamic'",
        ),
        ({"qat": {"learning_rate": 0}}, r"Expected qat.learning_rate > 0"),
        ({"epochs": 3}, r"Expected settings among .* Received: unknown=\['epochs'\]"),
        ({"prune": {"rate": 0.5}}, r"Expected prune settings among .* Received: unknown=\['rate'\]"),
        ({"teacher": 3}, r"Expected teacher to be a mapping of settings"),
        ([1, 2], r"Expected a mapping of settings"),
    ],
)
def test_bad_settings(values, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig.from_dict(values)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="Expected an existing config file"):
        PipelineConfig.from_file(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="Expected a valid JSON or YAML config file"):
        PipelineConfig.from_file(tmp_path / "broken.json")


def test_num_classes_is_optional():
    assert PipelineConfig().num_classes is None
    assert PipelineConfig.from_dict({"num_classes": 8}).num_classes == 8
    with pytest.raises(ValueError, match=r"Expected num_classes >= 2. Received: num_classes=1"):
        PipelineConfig(num_classes=1)
