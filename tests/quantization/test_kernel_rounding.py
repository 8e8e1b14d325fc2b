"""The QAT model's inference rounds as LiteRT's int8 kernels round: ties, biases, fixed grids."""

from fractions import Fraction

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompress.quantization import ActivationQuantizer, calibrate, fixed_ranges, quantize_model
from kcompress.quantization.fake_quant import bias_on_grid, fake_quant_range, grid_step, mean_on_grid
from tests.helpers import save_and_load
from tests.quantization.qhelpers import outputs
from tflite_export.convert import convert
from tflite_export.onnx import to_onnx
from tflite_export.verify import verify


@settings(max_examples=40, deadline=None)
@given(
    low=st.floats(-8.0, -0.01),
    high=st.floats(0.01, 8.0),
    rows=st.lists(st.lists(st.integers(0, 255), min_size=16, max_size=16), min_size=1, max_size=6),
)
def test_mean_on_grid_is_the_exact_mean_with_ties_to_even(low, high, rows):
    step = float(grid_step(low, high))
    # Values on the grid: fake-quantize each level's centre.
    zero = int(np.clip(np.round(-np.float32(fake_quant_range(low, low, high)) / step), 0, 255))
    levels = np.array(rows, np.int64)
    x = np.asarray(fake_quant_range(((levels - zero) * step).astype(np.float32), low, high))
    got = np.asarray(mean_on_grid(x, low, high)).ravel() / step
    for row, value in zip(levels, got):
        # Python rounds a Fraction half to even: the exact answer, in levels from the zero point.
        want = round(Fraction(int(row.sum()), len(row))) - zero
        assert round(float(value)) == want and abs(float(value) - want) < 1e-3, (row, value, want)


def test_mean_on_grid_ties_go_to_the_even_level():
    grid = fixed_ranges.TANH  # step 1/128, zero point 0
    # Means 0.5, 1.5, -0.5, -1.5 levels: fake quantization would round every one of them up.
    levels = np.array([[0, 1], [1, 2], [0, -1], [-1, -2]], np.float32)
    got = np.asarray(mean_on_grid(levels / 128, *grid)).ravel() * 128
    np.testing.assert_array_equal(got, [0.0, 2.0, 0.0, -2.0])


@pytest.mark.parametrize("low, high", [(-3.1, 7.3), (-11.7, 226.8)])  # zero points -52 and -115
def test_mean_on_grid_matches_litert_int8_mean_at_bert_width(low, high):
    # XNNPACK sends a tie to the even *int8* value, so with an odd zero point its answer is not
    # "exact mean of (q - zero point), ties to even" (one row in 8 differed there); in unsigned
    # levels, as mean_on_grid counts, the parities agree.
    import tensorflow as tf

    from tflite_export._runner import make_interpreter

    rows, depth = 512, 384
    fake_quant = tf.quantization.fake_quant_with_min_max_vars
    mean = tf.function(
        lambda x: fake_quant(tf.reduce_mean(fake_quant(x, low, high), -1, keepdims=True), low, high),
        input_signature=[tf.TensorSpec([rows, depth], tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([mean.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    interpreter = make_interpreter(converter.convert(), num_threads=2)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = inp["quantization"]
    assert out["quantization"] == (scale, zero)
    # Rows whose sums fall on or next to a tie.
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, size=(rows, depth))
    q[:, -1] = np.clip(q[:, -1] + depth // 2 + rng.integers(-2, 3, rows) - (q - zero).sum(-1) % depth, -128, 127)
    interpreter.set_tensor(inp["index"], q.astype(np.int8))
    interpreter.invoke()
    litert = interpreter.get_tensor(out["index"]).astype(np.int64).ravel()
    ours = np.asarray(mean_on_grid(((q - zero) * scale).astype(np.float32), low, high)).ravel()
    np.testing.assert_array_equal(np.round(ours / scale).astype(np.int64) + zero, litert)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    input_step=st.floats(1e-4, 1.0),
    per_channel=st.booleans(),
)
def test_bias_on_grid_is_the_nearest_int32_level(seed, input_step, per_channel):
    rng = np.random.default_rng(seed)
    kernel_scale = rng.uniform(0.01, 2.0, 5).astype(np.float32)
    kernel = (rng.integers(-127, 128, (4, 5)) * kernel_scale / 127).astype(np.float32)
    kernel[0] = 127 * kernel_scale / 127  # Each channel's largest magnitude sets its step.
    bias = rng.normal(0, 1, 5).astype(np.float32)
    axes = (0,) if per_channel else None
    got = np.asarray(bias_on_grid(bias, input_step, kernel, axes), np.float64)
    steps = np.abs(kernel).max(axis=0) / 127 if per_channel else np.full(5, np.abs(kernel).max() / 127)
    step = np.float64(np.float32(input_step)) * steps
    # On the grid and the nearest level to the bias, up to float32's precision at large levels.
    levels = got / step
    slack = 1e-3 + 1e-7 * np.abs(levels)
    assert np.all(np.abs(levels - np.round(levels)) <= slack), levels
    assert np.all(np.abs(levels - bias / step) <= 0.5 + slack), (levels, bias / step)


def test_bias_with_another_shape_than_the_channels_is_left_alone():
    kernel = np.ones((3, 2, 4), np.float32)
    bias = np.full((4,), 0.123, np.float32)  # One bias per last axis; the channels are 2 x 4.
    np.testing.assert_array_equal(np.asarray(bias_on_grid(bias, 0.1, kernel, (0,))), bias)


def layer_norm_model(depth=16):
    inputs = keras.Input((8, depth))
    x = keras.layers.LayerNormalization()(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_layer_norm_int8_is_exact_where_means_tie(tmp_path):
    # 16 features on the input grid: one row mean in 16 is a tie, which TF's fake quantization
    # rounds up and XNNPACK's int8 MEAN to the even level; inference rounds as the kernel does.
    keras.utils.set_random_seed(0)
    model = layer_norm_model()
    x = np.random.default_rng(0).normal(0, 1, (64, 8, 16)).astype("float32")
    qat = quantize_model(model)
    calibrate(qat, x)
    conversion = convert(qat, tmp_path / "ln.tflite", mode="int8")
    check = verify(qat, conversion.path, x)
    # One output in 1,536 is 2 steps off (measured): the row sums of squares run on LiteRT's
    # built-in int8 BATCH_MATMUL, which requantizes with two roundings, so a sum can land one
    # level away from the exact one and move its row's inverse norm.
    assert check.max_diff_in_steps < 2.01 and check.within_one_step >= 0.99, str(check)
    # Exported graphs keep the plain form (MEAN, float bias) for their converter to round.
    exported = to_onnx(qat, tmp_path / "ln.onnx", check_data=x[:4])
    assert "Round" not in exported.op_counts, exported.op_counts


@pytest.mark.parametrize(
    "make, op, grid",
    [
        (lambda: keras.layers.Dense(4, activation="tanh"), "TANH", fixed_ranges.TANH),
        (lambda: keras.layers.Activation("sigmoid"), "LOGISTIC", fixed_ranges.LOGISTIC),
    ],
    ids=["dense_tanh", "activation_sigmoid"],
)
def test_tanh_and_sigmoid_round_on_their_kernels_fixed_grid(make, op, grid, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(make()(hidden)))
    x = np.random.default_rng(0).normal(0, 0.3, (64, 8)).astype("float32")
    qat = quantize_model(model)
    calibrate(qat, x)
    fixed = [
        layer.fixed_range
        for layer in qat._flatten_layers()
        if isinstance(layer, ActivationQuantizer) and layer.fixed_range is not None
    ]
    assert fixed == [grid]
    # The saved model keeps the fixed grid (it has no range variables to load).
    np.testing.assert_allclose(outputs(save_and_load(qat), x), outputs(qat, x), atol=1e-6)
    conversion = convert(qat, tmp_path / "model.tflite", mode="int8")
    ops = conversion.model.op_counts()
    # The kernel writes straight on its grid: no requantizing op after it.
    assert ops[op] == 1 and "QUANTIZE" not in ops, ops
    check = verify(qat, conversion.path, x)
    assert check.within_one_step >= 0.95, str(check)
