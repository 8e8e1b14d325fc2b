"""`QuantizeLayerNorm`: layer normalization in the form int8 kernels run well."""

import keras
import numpy as np
from keras import ops

from kcompress._errors import expected_error
from kcompress.quantization import backends, fake_quant, quantizers
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

    def __init__(self, layer, config=None, channel_divisor=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        # The centred rows keep a learnt, asymmetric range: a zero-centred one (what XNNPACK's
        # int8 BATCH_MATMUL asks for) doubles the step when an outlier channel skews the row,
        # and the product of 64 rows of 384 is as fast on LiteRT's built-in kernel.
        for role in ("input", "centered", "sum_squares", "inverse_norm", "normalized", "scaled", "output"):
            self._quantizer(role)
        self.channel_divisor = None
        if channel_divisor is not None:
            self.divide_channels(channel_divisor)

    def divide_channels(self, divisor):
        """Makes the layer read its input with each channel divided by ``divisor[channel]``.

        `QuantizeTransformerEncoder` calls it when calibration finds outlier
        channels in a BERT's feed-forward residual stream: the sum reaching
        this layer then has them divided, so one int8 grid fits all
        channels, and the statistics are computed as for the undivided rows
        (see `call`). Adds the ranges of the extra tensors.

        Args:
            divisor: One value >= 1 per channel (a list or array).
        """
        values = [float(v) for v in keras.ops.convert_to_numpy(divisor).reshape(-1)]
        if any(not v >= 1.0 for v in values):
            raise expected_error("a channel divisor of values >= 1", divisor=values)
        depth = self.layer.gamma.shape[-1] if self.layer.built and self.layer.scale else None
        if depth is not None and len(values) != depth:
            raise expected_error(f"a channel divisor of {depth} values (one per channel)", divisor=len(values))
        self.channel_divisor = values
        locked = self.built and self._tracker.locked
        if locked:
            self._tracker.unlock()
        try:
            for role in _DIVIDED_ROLES:
                if role not in self._quantizers:
                    quantizer = self._quantizer(role)
                    if self.built:
                        quantizer.build()
        finally:
            if locked:
                self._tracker.lock()

    def divide_residual(self, x, training=None):
        """`x` with its channels divided as this layer's input is, on a range of its own."""
        divisor = np.asarray(self.channel_divisor, "float32")
        return self._quantizers["residual"](x * _quantized_constant(1.0 / divisor), training=training)

    def call(self, inputs, training=None):
        if self.channel_divisor is not None:
            return self._call_divided(inputs, training)
        q = self._quantizers
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
        inverse_norm = self._inverse_norm(sum_squares, depth, training)
        normalized = q["normalized"](centered * inverse_norm, training=training)
        return self._scale_and_shift(normalized, depth, training)

    def _inverse_norm(self, sum_squares, depth, training):
        q = self._quantizers
        sum_grid = q["sum_squares"].current_range()
        floor = ops.maximum(
            fake_quant.grid_step(*sum_grid, self.config.activation_bits), float(self.layer.epsilon) * depth
        )
        return q["inverse_norm"](ops.rsqrt(ops.maximum(sum_squares, floor)), training=training)

    def _scale_and_shift(self, normalized, depth, training):
        q = self._quantizers
        norm = self.layer
        if norm.scale:
            gamma = norm.gamma.value * (depth**0.5)
        else:
            gamma = ops.full((depth,), depth**0.5)
        y = q["scaled"](normalized * _quantized_constant(gamma), training=training)
        exporting = quantizers.is_exporting()
        if norm.center and not (exporting and _all_zero(norm.beta)):
            y = y + _quantized_constant(norm.beta.value)
        elif exporting and _same_levels(q["scaled"], q["output"], self.config.activation_bits):
            # Nothing is added between the two grids (the converter folds a zero beta away), and the
            # second maps each level of the first to the same level: the file keeps one grid. Two
            # nearly equal grids in a row are what the converter mishandles (seen on a fresh BERT:
            # its STRIDED_SLICE of the [CLS] row then fails the same-scale check).
            return y
        return q["output"](y, training=training)

    def _call_divided(self, inputs, training):
        """The layer on rows whose channels arrive divided by `channel_divisor` (d).

        With ``x' = x / d`` (one fine int8 grid for all channels):

            mean = x' @ (d / depth)                  FULLY_CONNECTED, rounded once
            centered' = x' - mean * (1 / d)          MUL, SUB: x - mean, divided
            sum_squares = (centered' * d) @ (centered' * d)
            normalized = (centered' * inverse_norm) * d

        and on as the undivided layer. The divisor holds two values (1 and
        one for the outliers, chosen so that every constant above is exact
        in int8), so each MUL constant is stored without error.
        """
        q = self._quantizers
        divisor = np.asarray(self.channel_divisor, "float32")
        depth = int(divisor.shape[0])
        x = self._quantize_input(inputs, training)
        mean = q["mean"](_dense_constant(x, (divisor / depth)[:, None]), training=training)
        mean_divided = q["mean_divided"](mean * _quantized_constant(1.0 / divisor), training=training)
        centered = q["centered"](x - mean_divided, training=training)
        undivided = q["centered_undivided"](centered * _quantized_constant(divisor), training=training)
        sum_squares = q["sum_squares"](_row_sum_squares(undivided), training=training)
        inverse_norm = self._inverse_norm(sum_squares, depth, training)
        normalized = q["normalized_divided"](centered * inverse_norm, training=training)
        normalized = q["normalized"](normalized * _quantized_constant(divisor), training=training)
        return self._scale_and_shift(normalized, depth, training)

    def get_config(self):
        config = super().get_config()
        config["channel_divisor"] = self.channel_divisor
        return config


# The extra tensors of the divided form, and the divided residual `divide_residual` writes.
_DIVIDED_ROLES = ("residual", "mean", "mean_divided", "centered_undivided", "normalized_divided")


def _dense_constant(x, weights):
    """``x @ weights`` over the last axis with a constant matrix, as an int8 FULLY_CONNECTED runs it."""
    if not quantizers.is_exporting():
        weights = fake_quant.fake_quant_symmetric(weights, reduce_axes=(0,))
    return backends.primitives().row_products(x, weights)


def _row_sum_squares(x):
    """``sum(x^2)`` over the last axis, keeping it, as one row-by-row matrix product.

    An int8 BATCH_MATMUL accumulates the squares exactly in int32 and rounds
    once; MUL then SUM would round every square on one grid, where the
    outlier channels of a BERT leave the ordinary ones at zero.
    """
    return backends.primitives().row_sum_squares(x)


def _all_zero(variable):
    """Whether a variable holds only zeros, read while a graph is traced for export."""
    with backends.primitives().init_scope():
        return not np.asarray(keras.ops.convert_to_numpy(variable)).any()


def _same_levels(first, second, bits):
    """Whether rounding to `second`'s grid keeps each level of `first`'s (both ends within a quarter step)."""
    with backends.primitives().init_scope():
        (low_a, high_a), (low_b, high_b) = (
            [float(keras.ops.convert_to_numpy(v)) for v in q.current_range()] for q in (first, second)
        )
        step = float(keras.ops.convert_to_numpy(fake_quant.grid_step(low_b, high_b, bits)))
    return step > 0 and max(abs(low_a - low_b), abs(high_a - high_b)) < step / 4


def _quantized_constant(value):
    """A per-tensor int8 constant, as the converter stores MUL/ADD operands."""
    if quantizers.is_exporting():
        return value
    return fake_quant.fake_quant_constant(value)
