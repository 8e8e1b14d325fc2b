"""Models without known inputs (subclassed) through `convert`, `verify` and `to_onnx`.

The signature comes from `representative_data` (an array, a list of arrays for
several inputs, a dict of arrays) or from an explicit `input_signature`; with
neither, a clear error. Each file is converted once per module.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress import quantization
from tests.helpers import subclassed_mlp
from tflite_export import convert, verify
from tflite_export.onnx import to_onnx


class TokenCNN(keras.Model):
    """The issue's model: Embedding -> Conv1D -> GlobalMaxPooling1D -> Dense, ``call(t, training=None)``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embed = keras.layers.Embedding(20, 8)
        self.conv = keras.layers.Conv1D(8, 3, activation="relu")
        self.pool = keras.layers.GlobalMaxPooling1D()
        self.dense = keras.layers.Dense(3)

    def call(self, t, training=None):
        return self.dense(self.pool(self.conv(self.embed(t))))


class TwoInputs(keras.Model):
    """``call([a, b])``: two float inputs of different widths."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a = keras.layers.Dense(4)
        self.b = keras.layers.Dense(4)
        self.out = keras.layers.Dense(2)

    def call(self, inputs, training=None):
        a, b = inputs
        return self.out(keras.ops.relu(self.a(a) + self.b(b)))


class DictInputs(keras.Model):
    """``call({"ids", "scale"})``: int32 token ids and a float feature."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embed = keras.layers.Embedding(10, 4)
        self.pool = keras.layers.GlobalAveragePooling1D()
        self.out = keras.layers.Dense(2)

    def call(self, inputs, training=None):
        return self.out(self.pool(self.embed(inputs["ids"])) * inputs["scale"])


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("signature")


@pytest.fixture(scope="module")
def mlp_data():
    return _rng().normal(size=(32, 16)).astype("float32")


@pytest.fixture(scope="module")
def mlp_float32(workdir, mlp_data):
    keras.utils.set_random_seed(0)
    model = subclassed_mlp()
    return model, convert(model, workdir / "mlp.tflite", representative_data=mlp_data)


@pytest.fixture(scope="module")
def token_int8(workdir):
    keras.utils.set_random_seed(1)
    model = TokenCNN()
    tokens = _rng(1).integers(0, 20, size=(32, 12)).astype("int32")
    model(tokens[:1])
    return model, tokens, convert(model, workdir / "tokens.tflite", mode="int8", representative_data=tokens)


def test_subclassed_float32_from_representative_data(mlp_float32, mlp_data):
    model, result = mlp_float32
    (spec,) = result.model.inputs
    assert (spec.name, spec.shape, spec.dtype) == ("input", (1, 16), "float32")
    check = verify(model, result.path, mlp_data)
    assert check.examples == 32 and check.agreement == 1.0 and check.max_abs_diff < 1e-5


def test_subclassed_int8_from_representative_data(token_int8):
    model, tokens, result = token_int8
    assert result.model.is_full_integer()
    assert [(t.shape, t.dtype) for t in result.model.inputs] == [((1, 12), "int32")]
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(result.model.op_counts())
    check = verify(model, result.path, tokens)
    assert check.agreement >= 0.9 and check.max_diff_in_steps <= 3


def test_two_inputs_from_a_list_of_arrays(workdir):
    keras.utils.set_random_seed(2)
    model = TwoInputs()
    data = [_rng(2).normal(size=(8, 3)).astype("float32"), _rng(3).normal(size=(8, 5)).astype("float32")]
    model(data)
    result = convert(model, workdir / "two.tflite", representative_data=data)
    assert {(t.name, t.shape) for t in result.model.inputs} == {("input_0", (1, 3)), ("input_1", (1, 5))}
    check = verify(model, result.path, data)
    assert check.examples == 8 and check.max_abs_diff < 1e-5
    same = verify(model, result.path, (data, np.zeros(8)))  # (x, y): x is the list.
    assert same.max_abs_diff == check.max_abs_diff
    onnx = to_onnx(model, workdir / "two.onnx", check_data=data)
    assert [i[:2] for i in onnx.inputs] == [("input_0", (None, 3)), ("input_1", (None, 5))] and onnx.max_abs_diff < 1e-5


def test_dict_inputs_from_a_dict_of_arrays(workdir):
    keras.utils.set_random_seed(3)
    model = DictInputs()
    data = {"ids": _rng(4).integers(0, 10, size=(8, 6)).astype("int32"), "scale": np.ones((8, 1), "float32")}
    model(data)
    result = convert(model, workdir / "dict.tflite", representative_data=data)
    assert {(t.name, t.shape, t.dtype) for t in result.model.inputs} == {
        ("ids", (1, 6), "int32"),
        ("scale", (1, 1), "float32"),
    }
    assert verify(model, result.path, data).max_abs_diff < 1e-5


def test_explicit_input_signature(mlp_float32, mlp_data, workdir):
    model = mlp_float32[0]
    spec = tf.TensorSpec((None, 16), tf.float32, name="features")
    result = convert(model, workdir / "features.tflite", input_signature=spec, batch_size=2)
    assert [(t.name, t.shape) for t in result.model.inputs] == [("features", (2, 16))]
    assert verify(model, result.path, mlp_data).max_abs_diff < 1e-5
    # keras.InputSpec in a dict: named by its key; the graph gets a dict.
    dict_model = DictInputs()
    specs = {"ids": keras.InputSpec(shape=(None, 6), dtype="int32"), "scale": keras.InputSpec(shape=(1, 1))}
    dict_model({"ids": np.zeros((1, 6), "int32"), "scale": np.ones((1, 1), "float32")})
    result = convert(dict_model, workdir / "dict_spec.tflite", input_signature=specs)
    assert sorted(t.name for t in result.model.inputs) == ["ids", "scale"]


def test_quantization_aware_subclassed_model_to_int8_from_input_signature(mlp_data, workdir):
    keras.utils.set_random_seed(4)
    qat = quantization.quantize_model(subclassed_mlp())
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(mlp_data, np.arange(32) % 2, epochs=1, verbose=0)
    spec = keras.InputSpec(shape=(None, 16))
    result = convert(qat, workdir / "qat.tflite", mode="int8", input_signature=spec)  # Ranges from QAT, no data.
    assert result.quantization_aware and result.model.is_full_integer()
    check = verify(qat, result.path, mlp_data)
    assert check.agreement == 1.0 and check.max_diff_in_steps <= 1


def test_to_onnx_of_a_subclassed_model_from_input_signature(mlp_float32, mlp_data, workdir):
    model = mlp_float32[0]
    result = to_onnx(model, workdir / "mlp.onnx", input_signature=keras.InputSpec(shape=(None, 16)))
    assert result.inputs == (("input_0", (None, 16), "float32"),) and result.max_abs_diff < 1e-5


def test_nothing_to_read_the_signature_from(mlp_float32, workdir):
    model = mlp_float32[0]
    name = model.name
    message = f"Expected a model with known inputs, representative_data or input_signature. Received: model='{name}'"
    with pytest.raises(ValueError) as error:
        convert(model, workdir / "none.tflite")
    assert str(error.value) == message
    assert not (workdir / "none.tflite").exists()
    with pytest.raises(ValueError, match="Expected a model with known inputs, check_data or input_signature"):
        to_onnx(model, workdir / "none.onnx")


@pytest.mark.parametrize(
    "signature, fragment",
    [
        ((16,), "Expected input_signature to be a tf.TensorSpec or keras.InputSpec (with a shape)"),
        ([], "Expected input_signature to be a tf.TensorSpec"),
        ({"a": [tf.TensorSpec((None, 16))]}, "Expected input_signature to be a tf.TensorSpec"),
        (tf.TensorSpec((8, 16)), "Expected input_signature specs with a batch axis of None or batch_size=1"),
        (tf.TensorSpec(()), "Expected input_signature specs with a batch axis"),
    ],
)
def test_bad_input_signature(mlp_float32, workdir, signature, fragment):
    with pytest.raises(ValueError) as error:
        convert(mlp_float32[0], workdir / "bad.tflite", input_signature=signature)
    assert fragment in str(error.value)


def test_representative_data_must_fit_the_input_signature(mlp_float32, workdir):
    spec = tf.TensorSpec((None, 16), tf.float32, name="features")
    with pytest.raises(ValueError, match=r"Expected representative_data for input 'features' of shape \(1, 16\)"):
        convert(mlp_float32[0], workdir / "bad.tflite", input_signature=spec, representative_data=np.zeros((4, 8)))
