import keras
import numpy as np
import pytest
import tensorflow as tf

from tflite_export.verify import Verification, verify


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(32, 16)).astype("float32")


def test_float32_conversion_agrees(mlp_float, x, tmp_path):
    path = tmp_path / "mlp.tflite"
    path.write_bytes(mlp_float[1])
    result = verify(mlp_float[0], path, x)
    assert isinstance(result, Verification)
    assert result.examples == 32 and result.agreement == 1.0
    assert result.max_abs_diff < 1e-4 and result.mean_abs_diff <= result.max_abs_diff
    assert result.output_scale is None and result.max_diff_in_steps is None and result.within_one_step is None
    assert "32 examples: 100.0% agree" in str(result)


def test_int8_conversion_reports_steps(mlp_int8, x):
    result = verify(mlp_int8[0], mlp_int8[1], x)
    assert result.output_scale > 0
    assert result.max_diff_in_steps == pytest.approx(result.max_abs_diff / result.output_scale)
    assert 0.0 < result.within_one_step <= 1.0
    assert result.agreement >= 0.75
    assert "steps of" in str(result) and "within one step" in str(result)


def test_data_forms_give_the_same_answer(mlp_float, x):
    model, data = mlp_float
    y = np.zeros(len(x))
    direct = verify(model, data, x, max_examples=10)
    assert direct.examples == 10
    assert verify(model, data, (x, y), max_examples=10) == direct
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    assert verify(model, data, batches, max_examples=10) == direct
    assert verify(model, data, tf.data.Dataset.from_tensor_slices(x[:10]).batch(3)) == direct


def test_dict_inputs(token_model, tokens):
    model, with_signature, without = token_model
    for data in (with_signature, without):
        result = verify(model, data, tokens)
        assert result.examples == 5 and result.agreement == 1.0 and result.max_abs_diff < 1e-5
    dataset = tf.data.Dataset.from_tensor_slices((tokens, np.zeros(5))).batch(2)
    assert verify(model, with_signature, dataset).examples == 5


def test_one_unit_output_uses_a_threshold(convert, x):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1, activation="sigmoid")])
    data = convert(lambda v: model(v, training=False), tf.TensorSpec([1, 16], tf.float32, name="x"))
    result = verify(model, data, x)
    assert result.agreement == 1.0 and result.max_abs_diff < 1e-5


def test_empty_data(mlp_float):
    with pytest.raises(ValueError, match="Expected non-empty data"):
        verify(mlp_float[0], mlp_float[1], np.zeros((0, 16)))


def test_empty_dataset(mlp_float):
    with pytest.raises(ValueError, match="Expected a dataset with at least one batch"):
        verify(mlp_float[0], mlp_float[1], tf.data.Dataset.from_tensor_slices(np.zeros((0, 16))).batch(2))


def test_wrong_shape(mlp_float):
    with pytest.raises(ValueError, match=r"Expected input 'x' of shape \(1, 16\) float32. Received: shape=\(1, 8\)"):
        verify(mlp_float[0], mlp_float[1], np.zeros((4, 8)))


def test_wrong_dtype(token_model, tokens):
    bad = dict(tokens, token_ids=tokens["token_ids"].astype("float32"))
    with pytest.raises(ValueError, match="integer values"):
        verify(token_model[0], token_model[1], bad)


def test_wrong_names(token_model, tokens):
    with pytest.raises(ValueError, match="Expected inputs named"):
        verify(token_model[0], token_model[1], {"ids": tokens["token_ids"]})


def test_keras_and_tflite_outputs_differ_in_shape(mlp_float, x):
    other = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"Expected the .tflite output to have the Keras output's shape \(32, 4\)"):
        verify(other, mlp_float[1], x)


def test_two_output_tflite(convert, mlp_float, x):
    data = convert(lambda v: (2.0 * v, 3.0 * v), tf.TensorSpec([1, 16], tf.float32, name="x"))
    with pytest.raises(ValueError, match="Expected a .tflite with one output"):
        verify(mlp_float[0], data, x)


def test_bad_arguments(mlp_float, x):
    with pytest.raises(ValueError, match="Expected a Keras model. Received: model='str'"):
        verify("model", mlp_float[1], x)
    with pytest.raises(ValueError, match="Expected max_examples >= 1"):
        verify(mlp_float[0], mlp_float[1], x, max_examples=0)
    with pytest.raises(ValueError, match=r"Expected a tuple \(x,\), \(x, y\)"):
        verify(mlp_float[0], mlp_float[1], (x, x, x, x))
