"""QAT -> int8 `.tflite`: the int8 model computes what the QAT model computes."""

import os

import keras
import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from kcompress.quantization import (
    QuantizationConfig,
    QuantizeSeparableConv,
    calibrate,
    quantization_wrappers,
    quantize_model,
)
from tests.helpers import bert_inputs, data_for, mlp, save_and_load, tiny_bert_classifier
from tests.quantization.qhelpers import fit, outputs, separable_cnn, small_cnn
from tflite_export.convert import MODES, convert
from tflite_export.onnx import to_onnx
from tflite_export.verify import verify


@keras.saving.register_keras_serializable(package="kcompress_tests")
def cumsum_last(t):
    return keras.ops.cumsum(t, axis=-1)


def qat_int8(model, x, y, path, steps=3, run_eagerly=True, config=None, **convert_kwargs):
    """quantize_model -> fit -> calibrate -> convert int8 -> verify."""
    qat = fit(quantize_model(model, config), x, y, steps=steps, run_eagerly=run_eagerly)
    calibrate(qat, x)
    conversion = convert(qat, path, mode="int8", **convert_kwargs)
    return qat, conversion, verify(qat, conversion.path, x)


@pytest.mark.parametrize("make", [mlp, small_cnn], ids=["mlp", "cnn"])
def test_qat_int8_matches_the_qat_model(make, tmp_path):
    model = make()
    x, y = data_for(model, n=64)
    _, conversion, check = qat_int8(model, x, y, tmp_path / "model.tflite", run_eagerly=False)
    assert conversion.mode == "int8" and conversion.quantization_aware
    assert conversion.model.is_full_integer(), str(conversion)
    assert os.path.getsize(conversion.path) == conversion.size_bytes
    assert check.examples == 64
    assert check.within_one_step >= 0.95, str(check)
    assert check.agreement >= 0.95, str(check)


def test_qat_int8_separable_conv(tmp_path):
    model = separable_cnn()
    x, y = data_for(model, n=64)
    qat = fit(quantize_model(model), x, y, steps=3, run_eagerly=False)
    separable = [w for w in quantization_wrappers(qat) if isinstance(w, QuantizeSeparableConv)]
    assert len(separable) == 2
    # The ranges between the depthwise and pointwise steps were learnt.
    assert all(float(w.quantizers["depthwise"].range_max.numpy()) > 0 for w in separable)
    loaded = save_and_load(qat)
    np.testing.assert_allclose(outputs(loaded, x), outputs(qat, x), atol=1e-6)

    calibrate(qat, x)
    conversion = convert(qat, tmp_path / "separable.tflite", mode="int8")
    assert conversion.model.is_full_integer(), str(conversion)
    # Each SeparableConv2D is a DEPTHWISE_CONV_2D and a 1x1 CONV_2D.
    ops = conversion.model.op_counts()
    assert ops["DEPTHWISE_CONV_2D"] == 2 and ops["CONV_2D"] == 3, ops
    check = verify(qat, conversion.path, x)
    assert check.within_one_step >= 0.95, str(check)
    assert check.agreement >= 0.95, str(check)


def bert_int8(seed, path, **convert_kwargs):
    """The BERT recipe: padded rows, QAT fit (eager, 4 steps), calibrate, int8, verify."""
    keras.utils.set_random_seed(seed)
    model = tiny_bert_classifier()
    x = bert_inputs(32, seed=seed)
    x["padding_mask"][::2, 6:] = 0  # Half the rows padded after 6 tokens.
    y = np.random.default_rng(seed).integers(0, 2, 32)
    qat = fit(quantize_model(model), x, y, steps=4)
    calibrate(qat, x)
    conversion = convert(qat, path, mode="int8", input_shapes={k: (8,) for k in x}, **convert_kwargs)
    return conversion, verify(qat, conversion.path, x)


# Seeds 1 and 2 (14 s each) are `large`.
@pytest.mark.parametrize("seed", [0, *(pytest.param(seed, marks=pytest.mark.large) for seed in (1, 2))])
def test_qat_int8_keras_hub_bert(seed, tmp_path):
    conversion, check = bert_int8(seed, tmp_path / "bert.tflite")
    assert conversion.model.is_full_integer(), str(conversion)
    assert {t.name: t.dtype for t in conversion.model.inputs} == {
        "token_ids": "int32",
        "segment_ids": "int32",
        "padding_mask": "int32",
    }
    ops = conversion.model.op_counts()
    assert ops["SOFTMAX"] == 2 and ops["GATHER"] == 2
    # LayerNorm: the sum of squares is a BATCH_MATMUL and one RSQRT a row, not LiteRT's built-in
    # L2_NORMALIZATION kernel (119 us at MiniLM shapes, where XNNPACK runs the rest in 18 us).
    assert ops["RSQRT"] == 5 and ops["BATCH_MATMUL"] == 4 + 5 and "L2_NORMALIZATION" not in ops, ops
    # The pooler's tanh writes on TANH's fixed 1/128 grid: no requantizing op after it.
    assert ops["TANH"] == 1 and "QUANTIZE" not in ops, ops
    # Masking is an int8 ADD of a bias (which XNNPACK runs) selected on the mask alone, not a
    # SELECT_V2 over every head's scores (LiteRT's built-in kernel: 39 us a layer at MiniLM shapes).
    selects = [op.outputs[0].shape for op in conversion.model.ops if op.name == "SELECT_V2"]
    assert selects == [(1, 1, 1, 8)] * 2, selects
    assert check.examples == 32 and check.agreement >= 0.95, str(check)
    # The QAT model's inference rounds as LiteRT's int8 kernels do (LayerNorm means' ties to even,
    # biases on their int32 grid, tanh on its fixed grid). Measured (seeds 0, 1, 2): 1.0, 0.984,
    # 1.0 within one step; before those three, 0.703, 0.594, 0.531.
    assert check.within_one_step >= 0.95, str(check)
    # Every LayerNorm's MEAN writes on its input's grid: TFLite's int8 MEAN rounds twice when
    # the two scales differ (the embeddings' LayerNorm used to quantize its input again).
    means = [op for op in conversion.model.ops if op.name == "MEAN"]
    assert len(means) == 5
    assert all(op.outputs[0].scale == op.inputs[0].scale for op in means), [
        (op.inputs[0].scale, op.outputs[0].scale) for op in means
    ]
    print(f"BERT int8 vs QAT: {check}")
    # XNNPACK runs an int8 BATCH_MATMUL only when its operands have zero point 0 (else the
    # built-in kernel, ~10x slower at MiniLM shapes): query, key and value ranges are symmetric.
    zero_points = batch_matmul_operand_zero_points(conversion.model)
    assert len(zero_points) == 6 and set(zero_points) == {0}, zero_points  # 2 layers x (q, k, v)


def test_qat_int8_keras_hub_bert_with_float_ops_for_cpus(tmp_path):
    # The CPU form: the ops XNNPACK has no int8 kernel for compute in float32 between int8 tensors.
    conversion, check = bert_int8(0, tmp_path / "bert_cpu.tflite", float_ops=("SOFTMAX", "GELU", "RSQRT"))
    assert conversion.float_ops == {"GELU": 2, "RSQRT": 5, "SOFTMAX": 2}
    computing_in_float = {op.name for op in conversion.model.float_ops()} - {"DEQUANTIZE", "QUANTIZE"}
    assert computing_in_float == {"GELU", "RSQRT", "SOFTMAX"}
    # As close to the QAT model as the full-int8 file (seed 0 there: 1.0 within one step).
    assert check.examples == 32 and check.agreement >= 0.95, str(check)
    assert check.within_one_step >= 0.95, str(check)


def batch_matmul_operand_zero_points(described):
    """Zero points of the attention BATCH_MATMUL operands (rank 4) other than softmax probabilities
    (fixed 1/256 grid); a LayerNorm's sum of squares is a rank-3 product of rows."""
    operands = [t for op in described.ops if op.name == "BATCH_MATMUL" for t in op.inputs if len(t.shape) == 4]
    return [t.zero_point for t in operands if t.scale != 1 / 256]


def test_calibrated_only_keras_hub_bert_converts(tmp_path):
    # Calibrate-only tiny BERT, seed 0: the converter used to reject the CLS-token StridedSlice
    # ("quantization parameters violate the same scale constraint"): pooled_dense re-quantized the
    # slice of the last LayerNorm's output on its own range, and the converter computed that
    # LayerNorm's scale in float32 in one place and float64 in another.
    keras.utils.set_random_seed(0)
    model = tiny_bert_classifier()
    x = bert_inputs(32, seed=0)
    qat = quantize_model(model)
    (pooled,) = [w for w in quantization_wrappers(qat) if w.layer.name == "pooled_dense"]
    assert not pooled.quantize_input
    calibrate(qat, x)
    conversion = convert(qat, tmp_path / "ptq.tflite", mode="int8", input_shapes={k: (8,) for k in x})
    assert conversion.model.is_full_integer(), str(conversion)
    assert conversion.model.op_counts()["STRIDED_SLICE"] == 1
    check = verify(qat, conversion.path, x)
    # Measured: 93.8% agreement, at most 7 output steps apart (near-zero logits of an untrained head).
    assert check.agreement >= 0.85 and check.max_diff_in_steps <= 20, str(check)


def plain_mlp_and_data():
    model = mlp()
    x, _ = data_for(model, n=32)
    return model, x


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_converts_a_float_mlp(mode, tmp_path):
    model, x = plain_mlp_and_data()
    data = x if mode in ("int8", "int16x8") else None
    conversion = convert(model, tmp_path / f"{mode}.tflite", mode=mode, representative_data=data)
    assert os.path.isfile(conversion.path) and os.path.getsize(conversion.path) == conversion.size_bytes > 0
    assert conversion.mode == mode and not conversion.quantization_aware
    assert conversion.model.is_full_integer() == (mode in ("int8", "int16x8"))
    check = verify(model, conversion.path, x)
    assert check.agreement >= 0.9, (mode, str(check))
    if mode in ("float32", "float16", "dynamic"):
        assert check.output_scale is None and check.max_abs_diff < 0.05, (mode, str(check))


def test_qat_model_converts_to_float32_by_stripping(tmp_path):
    model, x = plain_mlp_and_data()
    qat = quantize_model(model)
    calibrate(qat, x)
    conversion = convert(qat, tmp_path / "qat_float.tflite", mode="float32")
    assert os.path.isfile(conversion.path)
    assert not conversion.quantization_aware
    assert "FAKE_QUANT" not in conversion.model.op_counts()
    assert set(conversion.model.op_counts()) == {"FULLY_CONNECTED"}
    # Float activations, int8-rounded weights: close to the QAT model.
    check = verify(qat, conversion.path, x)
    assert check.output_scale is None and check.max_abs_diff < 0.1 and check.agreement >= 0.9, str(check)


def test_error_unknown_mode(tmp_path):
    model, _ = plain_mlp_and_data()
    with pytest.raises(ValueError, match=r"Expected mode in \('float32', .*\)\. Received: mode='int4'"):
        convert(model, tmp_path / "m.tflite", mode="int4")
    assert not os.listdir(tmp_path)


def test_error_missing_directory_leaves_no_file(tmp_path):
    model, _ = plain_mlp_and_data()
    target = tmp_path / "missing" / "m.tflite"
    with pytest.raises(ValueError, match=r"Expected a path in an existing directory\. Received: path="):
        convert(model, target)
    assert not (tmp_path / "missing").exists()
    assert not os.listdir(tmp_path)


def test_error_representative_data_of_wrong_shape(tmp_path):
    model, _ = plain_mlp_and_data()
    with pytest.raises(
        ValueError,
        match=r"Expected representative_data for input '.*' of shape \(1, 16\)\. "
        r"Received: shape=\(1, 15\)",
    ):
        convert(model, tmp_path / "m.tflite", mode="int8", representative_data=np.ones((4, 15), "float32"))
    assert not os.listdir(tmp_path)


def test_error_float_token_ids(tmp_path):
    model = tiny_bert_classifier()
    x = bert_inputs(4)
    x["token_ids"] = x["token_ids"].astype("float32")
    with pytest.raises(
        ValueError,
        match=r"Expected representative_data for input 'token_ids' of dtype int32\. "
        r"Received: dtype='float32'",
    ):
        convert(model, tmp_path / "m.tflite", mode="int8", representative_data=x)
    assert not os.listdir(tmp_path)


def test_error_unknown_sequence_length(tmp_path):
    with pytest.raises(ValueError, match=r"Expected static input shapes: pass input_shapes or representative_data"):
        convert(quantize_model(tiny_bert_classifier()), tmp_path / "m.tflite", mode="int8")


def test_error_int8_of_a_float_model_without_data(tmp_path):
    model, _ = plain_mlp_and_data()
    with pytest.raises(
        ValueError,
        match=r"Expected representative_data for mode='int8' \(or a model from "
        r"kcompress\.quantization\.quantize_model\)\. Received: representative_data=None",
    ):
        convert(model, tmp_path / "m.tflite", mode="int8")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("aware", [False, True], ids=["float", "qat"])
def test_error_int16x8_without_data(aware, tmp_path):
    model, _ = plain_mlp_and_data()
    if aware:
        model = quantize_model(model)
    with pytest.raises(
        ValueError,
        match=r"Expected representative_data for mode='int16x8'\. "
        r"Received: representative_data=None",
    ):
        convert(model, tmp_path / "m.tflite", mode="int16x8")
    assert not os.listdir(tmp_path)


def cumsum_model():
    inputs = keras.Input((16,))
    hidden = keras.layers.Lambda(cumsum_last)(keras.layers.Dense(8)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


@pytest.fixture
def calibrated_cumsum():
    model = cumsum_model()
    x, _ = data_for(model, n=16)
    qat = quantize_model(model)
    calibrate(qat, x)
    return qat


def test_op_without_int8_kernel_is_an_error_unless_allowed(calibrated_cumsum, tmp_path):
    path = tmp_path / "cumsum.tflite"
    with pytest.raises(
        ValueError,
        match=r"Expected a model that converts to full int8\. Received: op \d+ \(\w+\) "
        r"runs on float tensors.*allow_float_ops=True",
    ):
        convert(calibrated_cumsum, path, mode="int8")
    assert not os.listdir(tmp_path)

    conversion = convert(calibrated_cumsum, path, mode="int8", allow_float_ops=True)
    assert os.path.isfile(path)
    assert not conversion.model.is_full_integer()
    assert "CUMSUM" in {op.name for op in conversion.model.float_ops()}


def test_op_without_int8_kernel_is_named(calibrated_cumsum, tmp_path):
    with pytest.raises(ValueError, match=r"Received: op \d+ \(CUMSUM\) runs on float tensors"):
        convert(calibrated_cumsum, tmp_path / "cumsum.tflite", mode="int8")


@given(
    hidden=st.integers(2, 48),
    inputs=st.integers(1, 24),
    outputs=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=5, deadline=None)
def test_int8_within_one_step_over_mlp_shapes(hidden, inputs, outputs, seed, tmp_path_factory):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = mlp(input_dim=inputs, hidden=hidden, outputs=outputs)
    x = np.random.default_rng(seed).normal(size=(32, inputs)).astype("float32")
    y = np.random.default_rng(seed + 1).integers(0, outputs, 32)
    path = tmp_path_factory.mktemp("mlp") / "m.tflite"
    _, conversion, check = qat_int8(model, x, y, path, steps=2)
    assert conversion.model.is_full_integer()
    assert check.within_one_step >= 0.95, str(check)


def test_symmetric_activations_have_zero_point_0_in_tflite_and_onnx(tmp_path):
    # TensorRT's explicit int8 wants every activation on a range centred on zero.
    model = mlp()
    x, y = data_for(model, n=64)
    config = QuantizationConfig(symmetric_activations=True)
    qat, conversion, check = qat_int8(model, x, y, tmp_path / "mlp.tflite", run_eagerly=False, config=config)
    assert conversion.model.is_full_integer(), str(conversion)
    activations = [t for op in conversion.model.ops for t in op.inputs + op.outputs if not t.is_constant]
    assert len(activations) >= 4 and {(t.dtype, t.zero_point) for t in activations} == {("int8", 0)}
    assert check.within_one_step >= 0.95 and check.agreement >= 0.95, str(check)
    # The same ranges become the ONNX QuantizeLinear/DequantizeLinear pairs, all with zero point 0.
    exported = to_onnx(qat, tmp_path / "mlp.onnx", check_data=x)
    assert exported.qdq_pairs == 3
    graph = onnx.load(str(tmp_path / "mlp.onnx")).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zero_points = [constants[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(zero_points) == 3 and all(int(z) == 0 for z in zero_points)
