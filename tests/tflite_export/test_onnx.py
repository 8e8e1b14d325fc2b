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
    assert result.inputs[0][1] == (None, 8, 8, 4)  # Dynamic batch unless batch_size= is given.


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


# Quantization-aware models from kcompress.quantization, exported once per module: the int8 graph TensorRT runs.

ORT_BASIC = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # As to_onnx checks: no approximate int8 kernels.


def conv_model():
    """(QAT model, with batch norm): Conv2D -> [BatchNormalization ->] ReLU -> GlobalAveragePooling2D -> Dense.

    With BatchNormalization when `quantize_model` folds it (no BatchNormalization among the QAT model's
    layers), else without.
    """
    from kcompress.quantization import quantize_model

    for batch_norm in (True, False):
        keras.utils.set_random_seed(4)
        inputs = keras.Input((8, 8, 3), name="image")
        x = keras.layers.Conv2D(6, 3, use_bias=not batch_norm)(inputs)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        qat = quantize_model(keras.Model(inputs, keras.layers.Dense(3)(x)))
        if not any(isinstance(layer, keras.layers.BatchNormalization) for layer in qat.layers):
            return qat, batch_norm
    raise AssertionError("quantize_model left a BatchNormalization in a model without one")


def qat_case(name):
    """(QAT model, calibration / check data, input signature or None) for `name`."""
    from kcompress.quantization import calibrate, quantize_model

    if name == "mlp":
        keras.utils.set_random_seed(5)
        qat, data, signature = quantize_model(mlp()), rows(64, 16), None
    elif name == "cnn":
        qat, data, signature = conv_model()[0], rows(64, 8, 8, 3), None
    else:
        keras.utils.set_random_seed(6)
        qat, data = quantize_model(tiny_bert_classifier()), bert_inputs(n=64)
        data["padding_mask"][::3, -2:] = 0
        # keras-hub's inputs have an unknown sequence length; the export fixes it at 8.
        signature = {key: tf.TensorSpec((None, 8), tf.int32, name=key) for key in data}
    calibrate(qat, data)
    return qat, data, signature


@pytest.fixture(scope="module", params=["mlp", "cnn", "bert"])
def qat_export(request, tmp_path_factory):
    """(QAT model, check data, OnnxExport) with a dynamic batch."""
    qat, data, signature = qat_case(request.param)
    path = tmp_path_factory.mktemp("qat") / f"{request.param}.onnx"
    first_8 = tf.nest.map_structure(lambda array: array[:8], data)
    return qat, data, to_onnx(qat, path, input_signature=signature, check_data=first_8, batch_size=None)


def test_qat_graph_is_qdq_complete(qat_export):
    _, _, result = qat_export
    graph = onnx.load(result.path).graph
    producers = {out: node for node in graph.node for out in node.output}
    inits = {init.name: init for init in graph.initializer}
    products = [node for node in graph.node if node.op_type in ("Gemm", "MatMul", "Conv")]
    assert products and result.float_inputs == ()
    for node in products:
        sources = [producers.get(name) for name in node.input[:2]]
        assert [s.op_type if s else "initializer" for s in sources] == ["DequantizeLinear"] * 2, node.name
        weight = inits.get(sources[1].input[0])
        if weight is not None:  # The weight slot of MatMul / Gemm / Conv holds int8 levels, zero point 0.
            assert weight.data_type == onnx.TensorProto.INT8
            assert not numpy_helper.to_array(inits[sources[1].input[2]]).any()
    assert result.weight_dequantizers >= 2 and result.qdq_pairs >= 3


def test_int8_weights_are_the_keras_kernels_exactly(qat_export):
    from kcompress.quantization import quantization_wrappers
    from tflite_export._onnx_weights import fingerprint

    qat, _, result = qat_export
    graph = onnx.load(result.path).graph
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kernels = {
        fingerprint(keras.ops.convert_to_numpy(value))
        for wrapper in quantization_wrappers(qat)
        for _, value in wrapper.quantized_weights()
    }
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and inits.get(node.input[0]) is not None:
            levels, step = inits[node.input[0]], inits[node.input[1]]
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [-1 if d == axis else 1 for d in range(levels.ndim)] if step.ndim else []
            dequantized = levels.astype(np.float32) * step.reshape(shape)
            assert fingerprint(dequantized) in kernels  # Bit for bit what the QAT model multiplies by.


def output_step(qat):
    """The quantization step of the QAT model's output (its last quantized layer's output grid)."""
    from kcompress.quantization import fake_quant, quantization_wrappers

    last = [wrapper for wrapper in quantization_wrappers(qat) if "output" in wrapper.quantizers][-1]
    return float(fake_quant.grid_step(*last.quantizers["output"].current_range()))


def assert_close_to_keras(got, want, step):
    """The parity criterion: outputs on the Keras model's output grid, within one step, the same predictions.

    A value exactly half-way between two levels rounds up in TensorFlow and to even in ONNX; in a BERT
    the LayerNorms can carry such a one-level difference a few levels further. So: at least 90% of the
    outputs within one output step, none more than 4 steps off, and the same predicted class on every row
    whose Keras margin between its top two classes is wider than twice the largest difference.
    """
    off = np.abs(got - want) / step
    assert np.mean(off <= 1.001) >= 0.9 and off.max() <= 4.001, np.sort(off, axis=None)[-4:]
    top2 = np.sort(want, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * np.abs(got - want).max()
    assert (got.argmax(-1) == want.argmax(-1))[clear].all()


def test_onnxruntime_matches_keras_on_a_dynamic_batch(qat_export):
    qat, data, result = qat_export
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = ORT_BASIC
    session = onnxruntime.InferenceSession(result.path, options, providers=["CPUExecutionProvider"])
    assert all(i.shape[0] == "batch" for i in session.get_inputs() + session.get_outputs())
    step = output_step(qat)
    for rows in (slice(0, 8), slice(8, 9)):  # A batch of 8, then a batch of 1, through the same file.
        batch = tf.nest.map_structure(lambda array, rows=rows: array[rows], data)
        want = keras.ops.convert_to_numpy(qat(batch, training=False))
        got = session.run(None, dict(zip([name for name, _, _ in result.inputs], tf.nest.flatten(batch))))[0]
        assert got.shape == want.shape
        assert_close_to_keras(got, want, step)
    assert result.max_abs_diff <= 4.001 * step  # to_onnx's own check, on the same first 8 rows.


def test_qat_activations_are_int8(qat_export):
    _, _, result = qat_export
    graph = onnx.load(result.path).graph
    inits = {init.name: init for init in graph.initializer}
    dequantized = {
        inits[n.input[0]].data_type for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }
    zero_points = {
        inits[n.input[2]].data_type for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    }
    assert dequantized == zero_points == {onnx.TensorProto.INT8}


@pytest.mark.parametrize("per_channel, bits, scales", [(False, 8, ()), (True, 4, (32,))])
def test_int8_weights_keep_the_wrappers_grid(tmp_path, per_channel, bits, scales):
    from kcompress.quantization import QuantizationConfig, calibrate, quantize_model

    keras.utils.set_random_seed(7)
    qat = quantize_model(mlp(), QuantizationConfig(per_channel=per_channel, weight_bits=bits))
    calibrate(qat, rows(32, 16))
    result = to_onnx(qat, tmp_path / "mlp.onnx", check_data=rows(8, 16))
    assert result.max_abs_diff == 0 and result.weight_dequantizers == 2 and result.float_inputs == ()
    graph = onnx.load(result.path).graph
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    first = next(n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits)
    assert inits[first.input[1]].shape == scales  # One scale per tensor, or per output channel.
    assert np.abs(inits[first.input[0]]).max() == 2 ** (bits - 1) - 1  # Levels within +-7 for 4-bit weights.


class RoundedPositions(keras.layers.Layer):
    """Adds the first `length` rows of a table, rounded on their own range as QAT rounds a constant."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=(16, input_shape[-1]), initializer="random_normal", name="table")

    def call(self, x):
        from kcompress.quantization import fake_quant

        rows = keras.ops.slice(self.table, (0, 0), (keras.ops.shape(x)[1], x.shape[-1]))
        return x + fake_quant.fake_quant_constant(rows)


def test_constant_range_of_an_unknown_length_asks_for_a_fixed_one(tmp_path):
    inputs = keras.Input((None, 4), name="x")
    model = keras.Model(inputs, RoundedPositions()(inputs))
    with pytest.raises(ValueError, match=r"needs fixed non-batch dimensions: give input_signature"):
        to_onnx(model, tmp_path / "m.onnx", check_data=rows(2, 6, 4))
    result = to_onnx(model, tmp_path / "m.onnx", input_signature=tf.TensorSpec((None, 6, 4), name="x"), batch_size=None)
    assert result.inputs == (("x", (None, 6, 4), "float32"),) and result.max_abs_diff < 1e-5
