"""`QuantizeOutput`: a range for the output of a weightless layer."""

import keras
from keras import ops

from kcompress._errors import expected_error
from kcompress.quantization import fake_quant, fixed_ranges, folding, quantizers
from kcompress.quantization.base import QuantizeBase

# Merges the int8 graph computes pairwise, left to right: each partial result has a range.
_CHAINED = {keras.layers.Add: ops.add, keras.layers.Multiply: ops.multiply}


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeOutput(QuantizeBase):
    """Quantizes the output of Add, Concatenate, Activation, pooling, ...

    These layers create new values whose range the int8 graph needs. A
    `Softmax` layer gets TFLite's fixed [0, 1) grid instead of a learnt one.
    An `Add` or `Multiply` of more than two inputs runs pairwise, as the
    int8 graph does, with a range for each partial result. A layer whose
    output is a constant once shapes are fixed (keras-hub's
    `PositionEmbedding`) is rounded on its own range, as the converter
    stores constants (``constant=True``).

    Example:

    >>> import numpy as np
    >>> layer = QuantizeOutput(keras.layers.Add())
    >>> y = layer([np.ones((1, 2)), np.ones((1, 2))], training=True)
    >>> float(layer.quantizers["output"].range_max.numpy())
    2.0
    """

    def __init__(self, layer, config=None, constant=False, inputs=None, activation=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        if activation not in folding.ACTIVATIONS:
            raise expected_error("activation None, 'relu' or 'relu6'", activation=activation)
        self.activation = activation
        self.constant = bool(constant)
        if not self.constant:
            fixed = None
            if isinstance(layer, keras.layers.Softmax):
                fixed = fixed_ranges.SOFTMAX
            elif isinstance(layer, keras.layers.Activation):
                fixed = fixed_ranges.for_activation(layer.activation)
            self._quantizer("output", fixed_range=fixed)
        if inputs is None and layer.built:
            inputs = self._count_inputs((layer._build_shapes_dict or {}).get("input_shape"))
        self._set_inputs(inputs)

    def _count_inputs(self, shapes):
        """Number of inputs of a chained merge given its input shapes, else None."""
        if type(self.layer) not in _CHAINED or not isinstance(shapes, (list, tuple)) or not shapes:
            return None
        return len(shapes) if isinstance(shapes[0], (list, tuple)) else None

    def _set_inputs(self, inputs):
        """Records the number of inputs and adds a range for each partial result."""
        self.inputs = inputs
        for i in range(1, (inputs or 2) - 1):
            self._quantizer(f"partial_{i}")

    def build(self, input_shape=None):
        # An Add wrapped before it was built learns its number of inputs here, so the config
        # (and a copy made from it) says how many inputs it was built for.
        if self.inputs is None:
            self._set_inputs(self._count_inputs(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None, **kwargs):
        if self.constant:
            y = self.layer(inputs, **kwargs)
            return fake_quant.mark(y if quantizers.is_exporting() else fake_quant.fake_quant_constant(y))
        combine = _CHAINED.get(type(self.layer))
        if combine is not None and isinstance(inputs, (list, tuple)) and len(inputs) > 2:
            if len(inputs) != self.inputs:
                raise ValueError(
                    f"Expected {self.inputs} inputs to '{self.name}', as when it was wrapped. "
                    f"Received: {len(inputs)} inputs"
                )
            y = inputs[0]
            for i, x in enumerate(inputs[1:-1], start=1):
                y = self._quantizers[f"partial_{i}"](combine(y, x), training=training)
            y = combine(y, inputs[-1])
        else:
            y = self.layer(inputs, **kwargs)
        return self._quantizers["output"](folding.ACTIVATIONS[self.activation](y), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"constant": self.constant, "inputs": self.inputs, "activation": self.activation})
        return config
