"""`QuantizeAffine`: Rescaling, Normalization and an unfolded BatchNormalization as int8 MUL + ADD."""

import keras
from keras import ops

from kcompress._layer_table import LayerTable
from kcompress.quantization import fake_quant, folding, quantizers
from kcompress.quantization.base import QuantizeBase


def _rescaling(layer):
    return layer.scale, layer.offset


def _normalization(layer):
    deviation = ops.maximum(ops.sqrt(layer.variance), keras.backend.epsilon())
    if layer.invert:
        return deviation, layer.mean
    return 1.0 / deviation, -layer.mean / deviation


def _batch_norm(layer):
    gamma = layer.gamma.value if layer.scale else 1.0
    beta = layer.beta.value if layer.center else 0.0
    factor = gamma / ops.sqrt(layer.moving_variance.value + layer.epsilon)
    return factor, beta - layer.moving_mean.value * factor


_L = keras.layers
# Layer class -> ``layer -> (multiplier, offset)``: in inference the layer computes x * multiplier + offset.
COEFFICIENTS = LayerTable(
    {_L.Rescaling: _rescaling, _L.Normalization: _normalization, _L.BatchNormalization: _batch_norm}
)


def supports(layer):
    """Whether `layer` runs as ``x * a + b`` with channels last (a BatchNormalization over another axis does not).

    Example:

    >>> supports(keras.layers.Rescaling(1 / 255)), supports(keras.layers.BatchNormalization(axis=1))
    (True, False)
    """
    if isinstance(layer, _L.BatchNormalization):
        return folding.channels_last_batch_norm(layer)
    if isinstance(layer, _L.Normalization):
        return keras.backend.image_data_format() == "channels_last"
    return COEFFICIENTS.lookup(type(layer)) is not None


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeAffine(QuantizeBase):
    """Runs a per-channel (or scalar) affine layer as the int8 graph does: MUL, then ADD.

    `Rescaling` (``x * scale + offset``), `Normalization` (``(x - mean) / σ``)
    and a `BatchNormalization` with no Conv or Dense before it to fold into
    (``x * γ/σ + β - μγ/σ``) each become an int8 MUL by a constant and an
    int8 ADD of a constant, with a range for the input (unless a quantized
    layer produced it), the product and the output. A BatchNormalization
    trains on its moving statistics here (as a frozen one does): the int8
    file has no batch statistics to normalize with.

    Example:

    >>> import numpy as np
    >>> layer = QuantizeAffine(keras.layers.Rescaling(1 / 127.5, offset=-1.0))
    >>> y = layer(np.array([[0.0, 255.0]], "float32"), training=True)
    >>> sorted(layer.quantizers), np.round(np.asarray(y), 2).tolist()  # On the output's int8 grid.
    (['input', 'output', 'scaled'], [[-1.0, 1.0]])
    """

    def __init__(self, layer, config=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        self._quantizer("input")
        self._quantizer("scaled")
        self._quantizer("output")

    def call(self, inputs, training=None, **kwargs):  # A BatchNormalization's node passes ``mask``.
        x = self._quantize_input(ops.cast(inputs, "float32"), training)
        multiplier, offset = (ops.cast(v, "float32") for v in COEFFICIENTS.lookup(type(self.layer))(self.layer))
        if not quantizers.is_exporting():
            # The converter stores each constant operand on its own int8 range.
            multiplier, offset = fake_quant.fake_quant_constant(multiplier), fake_quant.fake_quant_constant(offset)
        y = self._quantizers["scaled"](x * multiplier, training=training)
        return self._quantizers["output"](y + offset, training=training)
