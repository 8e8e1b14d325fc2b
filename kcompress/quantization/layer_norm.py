"""`QuantizeLayerNorm`: layer normalization in the form int8 kernels run well."""

import keras
import tensorflow as tf
from keras import ops

from kcompress.quantization import fake_quant, fixed_ranges, quantizers
from kcompress.quantization.base import QuantizeBase


def supports(layer):
    """Whether `layer` normalizes over its last axis only (what BERTs use)."""
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.gamma.shape) if layer.built and layer.scale else None
    return len(axis) == 1 and axis[0] in (-1, rank) and not getattr(layer, "rms_scaling", False)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeLayerNorm(QuantizeBase):
    """Trains a `LayerNormalization` (last axis) for int8.

    The TFLite converter lowers LayerNormalization to a dozen int8 ops
    (variance, RSQRT, ...) that each round: the main reason transformer
    int8 models lose accuracy. This wrapper computes the same function as

        centered = x - mean(x)
        y = l2_normalize(centered) * (gamma * sqrt(d)) + beta

    which the converter maps to MEAN, SUB, L2_NORMALIZATION (exact int32
    arithmetic inside one kernel), MUL and ADD, and trains with the ranges
    of each of those tensors. The two differ only in how epsilon enters:
    ``max(sum, min(d * eps, 1e-4))`` instead of ``sum + d * eps`` (TFLite
    fuses the L2 normalization only for a small epsilon), which matters
    only for rows of nearly constant values. In inference calls the mean
    rounds as XNNPACK's int8 MEAN does (`fake_quant.mean_on_grid`: a tie
    goes to the even level), so the QAT model computes what the int8 file
    computes.

    Example:

    >>> import numpy as np
    >>> norm = keras.layers.LayerNormalization()
    >>> layer = QuantizeLayerNorm(norm)
    >>> x = np.random.rand(2, 8).astype("float32")
    >>> y = layer(x, training=True)
    >>> bool(np.abs(np.asarray(y) - np.asarray(norm(x))).max() < 0.1)
    True
    """

    def __init__(self, layer, config=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        for role in ("input", "centered", "scaled", "output"):
            self._quantizer(role)
        self._quantizer("normalized", fixed_range=fixed_ranges.L2_NORMALIZATION)

    def call(self, inputs, training=None):
        q = self._quantizers
        norm = self.layer
        # An input a quantized layer produced keeps its grid (quantized twice, the int8 graph would
        # keep one of the two ranges), and the mean goes on that same grid: TFLite's int8 MEAN
        # rounds twice when its output scale differs from its input's.
        x = self._quantize_input(inputs, training)
        grid = q["input"] if x is not inputs else fake_quant.quantizer_of(inputs)
        if grid is None:  # Quantized upstream on a grid not known here: learn one for the mean.
            grid = q["input"]
            grid.observe(inputs, training=training)
        depth = int(x.shape[-1])
        if quantizers.emulates_kernels(training):
            # Inference rounds the mean as the int8 kernel does (ties to even); exported graphs keep
            # MEAN and the grid for the converter, and in training the tie rule does not matter.
            mean = fake_quant.mean_on_grid(x, *grid.current_range())
        else:
            mean = ops.mean(x, axis=-1, keepdims=True)
        mean = grid.apply(mean)
        centered = q["centered"](x - mean, training=training)
        # TFLite fuses l2_normalize into L2_NORMALIZATION only for epsilon < 1e-3.
        epsilon = min(max(float(norm.epsilon) * depth, 1e-12), 1e-4)
        normalized = q["normalized"](_l2_normalize(centered, epsilon))
        if norm.scale:
            gamma = norm.gamma.value * (depth**0.5)
        else:
            gamma = ops.full((depth,), depth**0.5)
        y = q["scaled"](normalized * _quantized_constant(gamma), training=training)
        if norm.center:
            y = y + _quantized_constant(norm.beta.value)
        return q["output"](y, training=training)


def _l2_normalize(x, epsilon):
    """``x * rsqrt(max(sum(x^2), eps))``: the pattern TFLite fuses into L2_NORMALIZATION."""
    return tf.math.l2_normalize(x, axis=-1, epsilon=epsilon)


def _quantized_constant(value):
    """A per-tensor int8 constant, as the converter stores MUL/ADD operands."""
    if quantizers.is_exporting():
        return value
    return fake_quant.fake_quant_constant(value)
