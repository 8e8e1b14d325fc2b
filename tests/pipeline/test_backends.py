"""The pipeline under the JAX backend: the stages train in the JAX process, a TensorFlow child exports.

Under TensorFlow the same run is tests/pipeline/test_run.py's, so this module runs only under another
backend (``make test-jax``).
"""

import os

import keras
import numpy as np
import pytest

from kcompress.pipeline import DistillStage, QatStage, TeacherStage, run_pipeline
from tests.pipeline.conftest import tiny_config, write_tiny_classifier

pytestmark = [
    pytest.mark.backends,
    pytest.mark.skipif(
        keras.backend.backend() == "tensorflow", reason="TensorFlow runs the pipeline in tests/pipeline/test_run.py"
    ),
]


def test_pipeline_trains_under_this_backend_and_exports_a_tflite(tmp_path):
    # A one-layer teacher used as is, and one stage trains (pruning): each JAX fit of a tiny BERT compiles for ~15 s.
    config = tiny_config(
        tmp_path,
        model=str(write_tiny_classifier(tmp_path / "one_layer.keras", layers=1)),
        teacher=TeacherStage(epochs=0),
        distill=DistillStage(skip=True),
        qat=QatStage(skip=True),
    )
    result = run_pipeline(config, tmp_path / "run", verbose=0)
    assert [row["stage"] for row in result.rows] == ["teacher", "prune", "export"]
    teacher, prune, export = result.rows
    for row in (teacher, prune):  # Measured by the TensorFlow worker on the saved model.keras.
        assert 0.0 <= row["accuracy"] <= 1.0 and row["size_kind"] == "float32 .tflite" and row["latency_ms"] > 0
    assert export["mode"] == "int8" and export["agreement_with_keras"] > 0
    assert os.path.isfile(result.tflite_path) and result.tflite_path.endswith("model_int8.tflite")
    assert open(os.path.join(result.out, "03_export", "labels.txt")).read().split() == ["fresh", "rotten"]
    assert os.path.isfile(result.report_md) and os.path.isfile(os.path.join(result.out, "report.json"))
    assert not [name for name in os.listdir(result.out) if name.startswith(".")]
    # The pruned weights are the model's: half of each pruned kernel is zero.
    kernel = result.model.backbone.transformer_layers[0]._feedforward_intermediate_dense.kernel
    np.testing.assert_allclose(np.mean(np.asarray(kernel) == 0), 0.5, atol=0.05)

    again = run_pipeline(config, result.out, verbose=0)
    assert again.resumed == ("teacher", "prune", "export") and again.rows == result.rows

