import os

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
from onnx import numpy_helper

from tests.helpers import bert_inputs, functional_cnn, mlp, subclassed_mlp, tiny_bert_classifier
from tflite_export.onnx import OnnxExport, to_onnx


class FakeQuant(keras.layers.Layer):
    """What kcompress QAT puts on activations: per-tensor fake quant from min/max weights."""

    def __init__(self, minimum=-3.0, maximum=3.0, narrow_range=False, **kwargs):
        super().__init__(**kwargs)
        self.minimum, self.maximum, self.narrow_range = minimum, maximum, narrow_range

    def build(self, input_shape):
        constant = keras.initializers.Constant
        self.min_var = self.add_weight(shape=(), initializer=constant(self.minimum), trainable=False, name="min")
        self.max_var = self.add_weight(shape=(), initializer=constant(self.maximum), trainable=False, name="max")

    def call(self, x):
        return tf.quantization.fake_quant_with_min_max_vars(
            x, self.min_var, self.max_var, num_bits=8, narrow_range=self.narrow_range
        )

    @property
    def step(self):
        return (self.maximum - self.minimum) / 255


def qat_like_mlp():
    inputs = keras.Input((16,), name="features")
    x = FakeQuant(-3.0, 3.0)(inputs)
    x = keras.layers.Dense(8, activation="relu", bias_initializer="random_normal")(x)
    x = FakeQuant(0.0, 4.0)(x)  # Asymmetric (after ReLU): uint8 zero point 0 -> int8 -128.
    x = keras.layers.Dense(4)(x)
    outputs = FakeQuant(-2.0, 2.0, name="out_quant")(x)
    return keras.Model(inputs, outputs)


def prequantize_per_channel(model):
    """Puts kernels on a symmetric int8 grid per output channel, as weight QAT does."""
    reduce = {"kernel": None, "depthwise_kernel": (0, 1), "pointwise_kernel": (0, 1, 2)}
    for layer in model.layers:
        for weight in layer.weights:
            name = weight.path.split("/")[-1]
            if name not in reduce:
                continue
            axes = (0, 1) if isinstance(layer, keras.layers.DepthwiseConv2D) else reduce[name]
            value = keras.ops.convert_to_numpy(weight)
            axes = tuple(range(value.ndim - 1)) if axes is None else axes
            scale = np.abs(value).max(axis=axes, keepdims=True) / 127
            weight.assign(np.round(value / scale) * scale)


def rows(n, *shape):
    return np.random.default_rng(1).standard_normal((n, *shape)).astype("float32")


def test_mlp_export_parity_and_file(tmp_path):
    path = tmp_path / "mlp.onnx"
    result = to_onnx(mlp(), path, check_data=rows(10, 16), batch_size=4)  # 3 chunks, the last padded.
    assert isinstance(result, OnnxExport)
    assert result.max_abs_diff < 1e-5
    assert result.path == str(path) and result.size_bytes == os.path.getsize(path)
    assert result.inputs == (("input", (4, 16), "float32"),)
    assert result.outputs[0][1:] == ((4, 2), "float32")
    assert result.qdq_pairs == 0 and result.op_counts["MatMul"] == 2
    onnx.checker.check_model(str(path))
    assert "max abs diff" in str(result) and "MatMul 2" in str(result)
    assert os.listdir(tmp_path) == ["mlp.onnx"]  # No temporary file left.


def test_functional_cnn_random_inputs(tmp_path):
    result = to_onnx(functional_cnn(), tmp_path / "cnn.onnx")
    assert result.max_abs_diff < 1e-5
    assert result.op_counts["Conv"] == 4
    assert result.inputs[0][1] == (1, 8, 8, 4)


def test_subclassed_model_needs_signature_or_data(tmp_path):
    model = subclassed_mlp()
    with pytest.raises(ValueError, match="Expected a model with known inputs, check_data or input_signature"):
        to_onnx(model, tmp_path / "sub.onnx")
    result = to_onnx(model, tmp_path / "sub.onnx", check_data=rows(3, 16))
    assert result.max_abs_diff < 1e-5
    spec = tf.TensorSpec((None, 16), tf.float32, name="features")
    result = to_onnx(model, tmp_path / "sub.onnx", input_signature=spec, check_data=rows(5, 16), batch_size=None)
    assert result.inputs == (("features", (None, 16), "float32"),) and result.max_abs_diff < 1e-5


def test_keras_hub_bert_dict_inputs(tmp_path):
    data = bert_inputs(n=5)
    data["padding_mask"][::2, -3:] = 0  # Some padded rows, so the mask is exercised.
    result = to_onnx(tiny_bert_classifier(), tmp_path / "bert.onnx", check_data=data, batch_size=2)
    assert result.max_abs_diff < 1e-4
    assert {name for name, _, _ in result.inputs} == {"token_ids", "segment_ids", "padding_mask"}
    assert all(dtype == "int32" and shape[0] == 2 for _, shape, dtype in result.inputs)
    assert result.outputs[0][0] == "logits"
    session = onnxruntime.InferenceSession(str(tmp_path / "bert.onnx"), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} == set(data)


def test_fake_quant_becomes_int8_qdq(tmp_path):
    model = qat_like_mlp()
    step = model.get_layer("out_quant").step
    path = tmp_path / "qat.onnx"
    result = to_onnx(model, path, check_data=rows(16, 16) * 2)
    assert result.qdq_pairs == 3 and result.weight_dequantizers == 0
    assert result.op_counts["QuantizeLinear"] == 3 and result.op_counts["DequantizeLinear"] == 3
    assert result.max_abs_diff <= step + 1e-6
    graph = onnx.load(str(path)).graph
    onnx.checker.check_model(str(path))
    zero_points = {n.input[2] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    assert {inits[name].dtype for name in zero_points} == {np.dtype("int8")}
    assert {int(inits[name]) for name in zero_points} == {-128, 0}  # Symmetric ranges share a zero point.


def test_fake_quant_with_per_channel_weights(tmp_path):
    model = qat_like_mlp()
    prequantize_per_channel(model)
    step = model.get_layer("out_quant").step
    result = to_onnx(model, tmp_path / "qat.onnx", check_data=rows(16, 16) * 2, quantize_weights_per_channel=True)
    assert result.qdq_pairs == 3 and result.weight_dequantizers == 2
    assert result.max_abs_diff <= step + 1e-6
    graph = onnx.load(str(tmp_path / "qat.onnx")).graph
    weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    assert sorted(tuple(w.dims) for w in weights) == [(8, 4), (16, 8)]
    for node in graph.node:
        if node.op_type == "MatMul":
            assert node.input[1].endswith("_dequantized")


def test_per_channel_conv_axis_is_lossless_on_quantized_kernels(tmp_path):
    model = functional_cnn()
    prequantize_per_channel(model)
    result = to_onnx(model, tmp_path / "cnn.onnx", quantize_weights_per_channel=True)
    assert result.weight_dequantizers == 5  # Conv, depthwise, separable (2) and Dense.
    assert result.max_abs_diff < 1e-5  # A wrong channel axis would change the kernels.


def test_unconvertible_fake_quant_raises_and_writes_nothing(tmp_path):
    model = keras.Sequential([keras.Input((4,)), FakeQuant(narrow_range=True), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="narrow_range"):
        to_onnx(model, tmp_path / "bad.onnx")
    assert os.listdir(tmp_path) == []


def test_missing_directory(tmp_path):
    path = tmp_path / "missing" / "model.onnx"
    with pytest.raises(ValueError, match="existing directory"):
        to_onnx(mlp(), path)
    assert not path.parent.exists()


@pytest.mark.parametrize(
    "check_data, match",
    [
        (rows(4, 15), r"shape \(n, 16\).*check_data.shape=\(4, 15\)"),
        (rows(4, 16, 1), "check_data of shape"),
        ({"x": rows(4, 16)}, "check_data"),
        (np.array([["a"] * 16]), "castable to float32"),
    ],
)
def test_wrong_check_data(tmp_path, check_data, match):
    with pytest.raises(ValueError, match=match):
        to_onnx(mlp(), tmp_path / "m.onnx", check_data=check_data)
    assert os.listdir(tmp_path) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="opset >= 13"):
        to_onnx(mlp(), tmp_path / "m.onnx", opset=9)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        to_onnx(mlp(), tmp_path / "m.onnx", batch_size=0)
    with pytest.raises(ValueError, match=".onnx"):
        to_onnx(mlp(), tmp_path / "m.tflite")
    with pytest.raises(ValueError, match="tf.TensorSpec"):
        to_onnx(mlp(), tmp_path / "m.onnx", input_signature=(16,))
