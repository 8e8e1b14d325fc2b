import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kcompress.quantization.config import QuantizationConfig
from kcompress.quantization.fake_quant import fake_quant_range, fake_quant_symmetric, weight_step
from kcompress.quantization.quantizers import ActivationQuantizer

# 2-D weights (input rows x output channels), with exact zeros mixed in.
weights_2d = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    elements=st.one_of(st.just(0.0), st.floats(-10.0, 10.0, width=32)),
)
bits_st = st.integers(2, 8)


def per_channel(w, bits):
    """Fake-quantized `w` and its float64 step per output channel (axis 0 shares a scale)."""
    q = np.asarray(fake_quant_symmetric(w, reduce_axes=0, bits=bits))
    qmax = 2 ** (bits - 1) - 1
    step = np.maximum(np.abs(w).max(axis=0), 1e-12).astype(np.float32) / np.float32(qmax)
    return q, step.astype(np.float64), qmax


@given(w=weights_2d, bits=bits_st)
@settings(max_examples=25, deadline=None)
def test_symmetric_grid_properties_per_channel(w, bits):
    q, step, qmax = per_channel(w, bits)
    assert q.shape == w.shape and q.dtype == np.float32
    for c in range(w.shape[1]):
        column, s = q[:, c].astype(np.float64), step[c]
        # At most 2^bits - 1 levels: -qmax..qmax.
        assert len(np.unique(column)) <= 2**bits - 1
        # On the grid: integer multiples of the step, within -qmax..qmax.
        ratio = column / s
        np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-3)
        assert np.abs(np.round(ratio)).max() <= qmax
        # Rounding error at most half a step (plus float32 rounding).
        assert np.abs(w[:, c].astype(np.float64) - column).max() <= s / 2 * (1 + 1e-5) + 1e-7
        # The largest magnitude stays the largest (1 float32 ulp: see the xfail below).
        largest = np.abs(w[:, c]).max()
        # (Below 1e-12 the step is floored, so tiny channels round on a 1e-12 / qmax grid.)
        if largest >= np.float32(1e-12):
            assert abs(np.abs(q[:, c]).max() - largest) <= np.spacing(largest)
    # Exact zeros stay exactly zero (what sparsity-preserving QAT relies on).
    assert (q[w == 0] == 0).all()
    # The step is what `weight_step` reports.
    np.testing.assert_allclose(np.asarray(weight_step(w, 0, bits)).ravel(), step, rtol=1e-6)


@pytest.mark.xfail(
    strict=True,
    reason="fake_quant_symmetric computes 127 * (max / 127) in float32, which can differ from max by 1 ulp",
)
def test_max_abs_preserved_exactly():
    w = np.array([[1.9999866]], "float32")
    assert np.asarray(fake_quant_symmetric(w, reduce_axes=0))[0, 0] == w[0, 0]


@given(w=weights_2d, bits=bits_st)
@settings(max_examples=25, deadline=None)
def test_per_tensor_scale_has_one_grid(w, bits):
    q = np.asarray(fake_quant_symmetric(w, reduce_axes=None, bits=bits)).astype(np.float64)
    qmax = 2 ** (bits - 1) - 1
    step = float(np.float32(max(np.abs(w).max(), 1e-12)) / np.float32(qmax))
    assert len(np.unique(q)) <= 2**bits - 1
    np.testing.assert_allclose(q / step, np.round(q / step), atol=1e-3)


@given(w=weights_2d, bits=bits_st, seed=st.integers(0, 2**16), compiled=st.booleans())
@settings(max_examples=25, deadline=None)
def test_gradient_is_straight_through(w, bits, seed, compiled):
    weights = tf.Variable(w)
    upstream = tf.constant(np.random.default_rng(seed).normal(size=w.shape).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(fake_quant_symmetric(weights, reduce_axes=0, bits=bits, compiled=compiled) * upstream)
    grad = tape.gradient(loss, weights)
    np.testing.assert_array_equal(grad.numpy(), upstream.numpy())


@given(w=weights_2d, bits=bits_st, per_channel=st.booleans())
@settings(max_examples=25, deadline=None)
def test_compiled_rounding_is_bit_identical(w, bits, per_channel):
    """Training steps round with XLA, exported graphs with plain ops: the same numbers either way."""
    axes = 0 if per_channel else None
    plain = np.asarray(fake_quant_symmetric(w, axes, bits))
    compiled = np.asarray(fake_quant_symmetric(w, axes, bits, compiled=True))
    np.testing.assert_array_equal(compiled.view(np.int32), plain.view(np.int32))


def test_compiled_rounding_inside_a_traced_step_handles_3d_kernels():
    """An EinsumDense kernel (input, heads, size) rounds per (head, size) channel inside a tf.function."""
    w = tf.Variable(np.random.default_rng(0).normal(size=(8, 3, 4)).astype("float32"))
    step = tf.function(lambda: fake_quant_symmetric(w, (0,), compiled=True))
    np.testing.assert_array_equal(step().numpy(), np.asarray(fake_quant_symmetric(w, (0,))))


def nudged_range(low, high, levels=255):
    """TF's FakeQuantWithMinMaxVars nudging (narrow_range=False), after widening to contain 0."""
    low, high = min(low, 0.0), max(high, 0.0)
    high = max(high, low + 1e-6)
    scale = (high - low) / levels
    zero_point = float(np.clip(np.round(-low / scale), 0, levels))
    return -zero_point * scale, (levels - zero_point) * scale, scale


@given(
    x=hnp.arrays(np.float32, st.integers(1, 64), elements=st.floats(-20.0, 20.0, width=32)),
    low=st.floats(-10.0, 5.0),
    width=st.floats(1e-3, 15.0),
)
@settings(max_examples=25, deadline=None)
def test_range_quantization_lies_on_the_nudged_255_step_grid(x, low, width):
    high = low + width
    y = np.asarray(fake_quant_range(x, low, high)).astype(np.float64)
    nudged_low, nudged_high, scale = nudged_range(low, high)
    tolerance = 1e-4 * max(1.0, abs(nudged_low), abs(nudged_high))
    assert (y >= nudged_low - tolerance).all() and (y <= nudged_high + tolerance).all()
    levels = (y - nudged_low) / scale
    np.testing.assert_allclose(levels, np.round(levels), atol=2e-3)
    assert len(np.unique(np.round(levels))) <= 256
    # Values inside the range move by at most half a step; zero is exact.
    inside = (x >= nudged_low) & (x <= nudged_high)
    assert (np.abs(y[inside] - x[inside]) <= scale / 2 + tolerance).all()
    assert float(fake_quant_range(np.float32(0.0), low, high)) == 0.0


def test_range_is_widened_to_contain_zero():
    y = np.asarray(fake_quant_range(np.array([-1.0, 0.0, 1.0, 3.0], "float32"), 0.5, 2.0))
    np.testing.assert_allclose(y, [0.0, 0.0, 1.0, 2.0], atol=1e-2)


@given(
    x=hnp.arrays(np.float32, st.integers(1, 64), elements=st.floats(-50, 50, width=32)),
    bits=st.sampled_from([8, 16]),
)
@settings(max_examples=30, deadline=None)
def test_symmetric_activation_range_has_zero_point_zero(x, bits):
    assume(float(np.abs(x).max()) > 1e-3)
    quantizer = ActivationQuantizer(QuantizationConfig(activation_bits=bits), symmetric=True)
    quantizer(x, training=True)
    low, high = (float(v) for v in quantizer.current_range())
    levels = 2.0 ** (bits - 1)
    scale = (high - low) / (2 * levels - 1)
    assert abs(-low / scale - levels) < 1e-3  # Zero sits exactly on a grid level: zero point 0.
    assert -low == pytest.approx(float(np.abs(x).max()), rel=1e-6)
    assert high == pytest.approx(-low * (levels - 1) / levels, rel=1e-6)
    restored = ActivationQuantizer.from_config(quantizer.get_config())
    assert restored.symmetric
