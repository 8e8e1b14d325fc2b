"""`QuantizeTransformerEncoder`: a BERT block whose residual stream's outlier channels get a grid of their own."""

import keras
import numpy as np

from kcompress import _swaps
from kcompress._errors import expected_error
from kcompress.quantization import backends, quantizers
from kcompress.quantization.base import ConfiguredWrapper
from kcompress.quantization.kernel import QuantizeKernel
from kcompress.quantization.layer_norm import QuantizeLayerNorm

# The largest int8 level of an asymmetric constant grid on [0, max]: the divisor is 255 / m for an
# integer m, so that 1 and the divisor (and 1 and 1 / divisor) are both levels of one grid.
_LEVELS = 255


def supports(layer):
    """Whether `layer` is a keras-hub `TransformerEncoder` with LayerNorms after the residual adds (BERT)."""
    bases = [cls for cls in type(layer).__mro__ if cls.__name__ == "TransformerEncoder"]
    return bool(bases) and bases[0].__module__.startswith("keras_hub") and not layer.normalize_first


def can_split(layer):
    """Whether `layer` is supported and its feed-forward output and LayerNorm are quantized."""
    return (
        supports(layer)
        and isinstance(getattr(layer, "_feedforward_output_dense", None), QuantizeKernel)
        and isinstance(getattr(layer, "_feedforward_layer_norm", None), QuantizeLayerNorm)
    )


def divisor_for(magnitude, ratio):
    """The channel divisor that puts the outliers of `magnitude` on the ordinary channels' grid, or None.

    A channel is an outlier when its largest magnitude exceeds `ratio` times
    the median channel's. All outliers share one divisor, ``255 / m`` for
    the integer m that brings the largest outlier within the ordinary
    channels' largest magnitude (so every int8 constant built from the
    divisor is exact).

    Example:

    >>> divisor_for(np.array([1.0, 2.0, 1.5, 40.0]), ratio=4.0).round(2).tolist()
    [1.0, 1.0, 1.0, 21.25]
    """
    if ratio <= 0:
        return None
    magnitude = np.asarray(magnitude, "float64")
    outliers = magnitude > ratio * np.median(magnitude)
    if not outliers.any() or outliers.all():
        return None
    spread = magnitude[outliers].max() / max(magnitude[~outliers].max(), 1e-12)
    steps = int(np.clip(np.floor(_LEVELS / spread), 1, _LEVELS))
    if steps == _LEVELS:
        return None
    return np.where(outliers, _LEVELS / steps, 1.0).astype("float32")


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeTransformerEncoder(ConfiguredWrapper):
    """Runs a keras-hub `TransformerEncoder` (post-LayerNorm, as in BERT) with a split residual stream.

    In a BERT's feed-forward block a few channels of the output dense and
    of the residual sum reach 50 to 220 while the others stay within about
    ±12 (MiniLM: 4 of 384 per layer). On one int8 grid per tensor those few
    set the step for all, and the LayerNorm then amplifies the rounding of
    the others: most of a full-int8 MiniLM's distance from float
    (``benchmarks/int8_error_budget.py``). This wrapper keeps those
    channels divided by a constant d from the feed-forward output dense
    (its kernel columns and bias divided) through the residual add (the
    attention block's output divided by a MUL) into the LayerNorm, which
    computes its statistics as for the undivided rows (see
    `QuantizeLayerNorm.divide_channels`), so the int8 graph holds the
    ordinary channels on a fine grid. Every op stays int8.

    The outlier channels are chosen by `calibrate` from the largest
    magnitude each channel reaches (`QuantizationConfig.outlier_ratio`);
    until then, or with none found, the block runs as the encoder does.
    `quantize_model` wraps every supported encoder whose feed-forward
    layers it quantizes.

    Args:
        layer: The `TransformerEncoder`, its sublayers already wrapped by
            `quantize_model`.
        config: A `QuantizationConfig` (its `outlier_ratio` is used).
        **kwargs: Base layer arguments.

    Example:

    >>> import keras_hub
    >>> from kcompress import quantization
    >>> encoder = keras_hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2)
    >>> inputs = keras.Input((4, 8))
    >>> qat = quantization.quantize_model(keras.Model(inputs, encoder(inputs)))
    >>> type(qat.layers[-1]).__name__
    'QuantizeTransformerEncoder'
    """

    def __init__(self, layer, config=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        if not supports(layer):
            raise expected_error(
                "a keras-hub TransformerEncoder with normalize_first=False",
                layer=f"{layer.name} ({type(layer).__name__})",
            )
        self._magnitude = None
        self._observing = False

    @property
    def channel_divisor(self):
        """The divisor of each residual channel (None: one grid for all)."""
        norm = self.layer._feedforward_layer_norm
        return getattr(norm, "channel_divisor", None)

    @property
    def divided_channels(self):
        """How many residual channels are carried divided (0 with one grid)."""
        divisor = self.channel_divisor
        return 0 if divisor is None else int((np.asarray(divisor) > 1).sum())

    def start_observing(self):
        """Records the largest magnitude of each residual channel in the next calibrating calls."""
        self._magnitude = None
        self._observing = True

    def split_outliers(self):
        """Stops observing and divides the outlier channels seen; returns how many there are."""
        magnitude, self._magnitude, self._observing = self._magnitude, None, False
        if magnitude is None or not can_split(self.layer) or self.channel_divisor is not None:
            return 0
        divisor = divisor_for(magnitude, self.config.outlier_ratio)
        if divisor is None:
            return 0
        self.layer._feedforward_layer_norm.divide_channels(divisor)
        return self.divided_channels

    def build(self, input_shape=None):
        if not self.layer.built and input_shape is not None:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False):
        from keras_hub.src.layers.modeling.transformer_layer_utils import merge_padding_and_attention_mask

        encoder = self.layer
        mask = merge_padding_and_attention_mask(inputs, padding_mask, attention_mask)
        extra = {"return_attention_scores": True} if return_attention_scores else {}
        attention = encoder._self_attention_layer(
            query=inputs, value=inputs, attention_mask=mask, training=training, **extra
        )
        x, scores = attention if return_attention_scores else (attention, None)
        x = encoder._self_attention_dropout(x, training=training)
        residual = encoder._self_attention_layer_norm(x + inputs)
        x = encoder._feedforward_intermediate_dense(residual)
        divisor = self.channel_divisor
        if divisor is None:
            x = encoder._feedforward_output_dense(x)
        else:
            x = encoder._feedforward_output_dense(x, output_divisor=divisor)
            residual = encoder._feedforward_layer_norm.divide_residual(residual, training=training)
        x = encoder._feedforward_dropout(x, training=training) + residual
        if self._observing and divisor is None and quantizers.is_calibrating():
            self._observe(x)
        x = encoder._feedforward_layer_norm(x, training=training)
        return (x, scores) if return_attention_scores else x

    def _observe(self, x):
        if not backends.primitives().executing_eagerly(x):
            return
        magnitude = np.abs(keras.ops.convert_to_numpy(x)).reshape(-1, x.shape[-1]).max(axis=0)
        self._magnitude = magnitude if self._magnitude is None else np.maximum(self._magnitude, magnitude)

    def get_config(self):
        config = super().get_config()
        # The encoder's own config does not list the wrappers inside it: save them with it.
        config["layer"] = keras.saving.serialize_keras_object(_swaps.record_swaps(self.layer))
        return config
