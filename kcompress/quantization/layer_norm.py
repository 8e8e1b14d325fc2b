"""`QuantizeLayerNorm`: layer normalization in the form int8 kernels run well."""

import keras
import tensorflow as tf
from keras import ops

from kcompress.quantization import fake_quant, quantizers
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
        sum_squares = centered @ centered        (per row, a matrix product)
        y = centered * rsqrt(sum_squares) * (gamma * sqrt(d)) + beta

    which the converter maps to MEAN, SUB, BATCH_MATMUL (the sum of squares
    accumulated exactly in int32 and rounded once), MAXIMUM, RSQRT (one value
    per row), MUL, MUL and ADD, and trains with the range of each of those
    tensors. At MiniLM's shapes (64 rows of 384) the block ran in 16 µs on
    LiteRT where its built-in L2_NORMALIZATION kernel, the form used before,
    took 117 µs; on a calibrated MiniLM the logits were also closer to the
    float model's (RMSE 0.304 against 0.343). The function differs from
    LayerNormalization's only in how epsilon enters: ``max(sum, floor)``
    instead of ``sum + d * eps``, where the floor is the larger of ``d * eps``
    and the first level of the sum's grid; that matters only for rows of
    nearly constant values. In inference calls the mean rounds as XNNPACK's
    int8 MEAN does (`fake_quant.mean_on_grid`: a tie goes to the even level),
    so the QAT model computes what the int8 file computes.

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
        # The centred rows keep a learnt, asymmetric range: a zero-centred one (what XNNPACK's
        # int8 BATCH_MATMUL asks for) doubles the step when an outlier channel skews the row,
        # and the product of 64 rows of 384 is as fast on LiteRT's built-in kernel.
        for role in ("input", "centered", "sum_squares", "inverse_norm", "normalized", "scaled", "output"):
            self._quantizer(role)

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
        sum_squares = q["sum_squares"](_row_sum_squares(centered), training=training)
        # A row whose sum rounds to 0 reads the grid's first level instead: rsqrt(epsilon) alone
        # would be huge, and one such row in a batch would stretch the learnt inverse-norm range
        # (seen in MiniLM QAT: 0.07 -> 510 in 8 steps, and the model stopped learning).
        sum_grid = q["sum_squares"].current_range()
        floor = ops.maximum(fake_quant.grid_step(*sum_grid, self.config.activation_bits), float(norm.epsilon) * depth)
        inverse_norm = q["inverse_norm"](tf.math.rsqrt(tf.maximum(sum_squares, floor)), training=training)
        normalized = q["normalized"](centered * inverse_norm, training=training)
        if norm.scale:
            gamma = norm.gamma.value * (depth**0.5)
        else:
            gamma = ops.full((depth,), depth**0.5)
        y = q["scaled"](normalized * _quantized_constant(gamma), training=training)
        if norm.center:
            y = y + _quantized_constant(norm.beta.value)
        return q["output"](y, training=training)


def _row_sum_squares(x):
    """``sum(x^2)`` over the last axis, keeping it, as one row-by-row matrix product.

    An int8 BATCH_MATMUL accumulates the squares exactly in int32 and rounds
    once; MUL then SUM would round every square on one grid, where the
    outlier channels of a BERT leave the ordinary ones at zero.
    """
    depth = x.shape[-1]
    rows = tf.reshape(x, [-1, 1, depth])
    sums = tf.matmul(rows, rows, transpose_b=True)
    return tf.reshape(sums, tf.concat([tf.shape(x)[:-1], [1]], axis=0))


def _quantized_constant(value):
    """A per-tensor int8 constant, as the converter stores MUL/ADD operands."""
    if quantizers.is_exporting():
        return value
    return fake_quant.fake_quant_constant(value)
