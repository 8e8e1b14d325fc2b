"""`compare_tensors`: a QAT model and its int8 `.tflite`, tensor by tensor."""

import keras
import numpy as np
import pytest

from kcompress.quantization import calibrate, quantize_model
from tests.helpers import bert_inputs, tiny_bert_classifier
from tflite_export import compare_tensors, convert


def three_dense(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3),
        ]
    )


@pytest.fixture(scope="module")
def mlp_qat(tmp_path_factory):
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    qat = quantize_model(three_dense())
    calibrate(qat, x)
    path = tmp_path_factory.mktemp("tensors") / "mlp.tflite"
    convert(qat, path, mode="int8")
    return qat, path, x


def test_every_tensor_of_an_mlp_pairs_and_agrees(mlp_qat):
    qat, path, x = mlp_qat
    report = compare_tensors(qat, path, x, max_examples=16)
    assert report.examples == 16
    # Input, then each Dense output: all on the .tflite's grids.
    assert len(report.tensors) >= 4
    assert all(t.tflite_name is not None for t in report.tensors), str(report)
    assert all(t.within_one_step == 1.0 for t in report.tensors), str(report)
    assert report.first_drift() is None
    assert "exact" in str(report) and "[0]" in str(report)


def test_a_changed_layer_is_where_the_drift_starts(mlp_qat, tmp_path):
    qat, path, x = mlp_qat
    changed = quantize_model(three_dense())
    calibrate(changed, x)
    convert(changed, tmp_path / "mlp.tflite", mode="int8")
    # The Keras side now computes another last layer; the .tflite keeps the old one.
    last = changed.layers[-1].layer
    last.kernel.assign(last.kernel * 1.5)
    report = compare_tensors(changed, tmp_path / "mlp.tflite", x, max_examples=16)
    drift = report.first_drift()
    assert drift is not None and drift is report.tensors[-1], str(report)
    assert all(t.within_one_step == 1.0 for t in report.tensors[:-1]), str(report)


def test_tiny_bert_pairs_every_tensor_and_leaves_padding_out(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_bert_classifier()
    x = bert_inputs(16)
    x["padding_mask"][:, 5:] = 0
    qat = quantize_model(model)
    calibrate(qat, x)
    convert(qat, tmp_path / "bert.tflite", mode="int8", input_shapes={k: (8,) for k in x})
    report = compare_tensors(qat, tmp_path / "bert.tflite", x, max_examples=8)
    names = [t.keras_name for t in report.tensors]
    # Two transformer layers: each attention quantizer is called twice, numbered [0] and [1].
    assert any(name.endswith("_query[1]") for name in names), names
    assert all(t.tflite_name is not None for t in report.tensors), str(report)
    # Measured: every tensor within one level on real tokens (the padded ones are left out).
    assert min(t.within_one_step for t in report.tensors) >= 0.95, str(report)
    assert report.tensors[-1].shape == (1, 2) and report.tensors[-1].values == 8 * 2
    # A (batch, positions, features) tensor is compared on the 5 real positions of each example.
    hidden = next(t for t in report.tensors if t.keras_name.endswith("_query[0]"))
    assert hidden.shape[:2] == (1, 8)
    assert hidden.values == 8 * 5 * int(np.prod(hidden.shape[2:])), hidden


def test_bad_input_is_a_clear_error(mlp_qat, tmp_path):
    qat, path, x = mlp_qat
    with pytest.raises(ValueError, match="Expected a model returned by quantize_model"):
        compare_tensors(three_dense(), path, x)
    with pytest.raises(ValueError, match="Expected max_examples"):
        compare_tensors(qat, path, x, max_examples=0)
    convert(qat, tmp_path / "float.tflite", mode="float32")
    with pytest.raises(ValueError, match="Expected an int8 .tflite"):
        compare_tensors(qat, tmp_path / "float.tflite", x)
