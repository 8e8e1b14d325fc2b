"""What every quantization wrapper shares: config, output range, saving."""

import keras

from kcompress import _stateless
from kcompress.quantization import config as config_lib
from kcompress.quantization import fake_quant, quantizers


class ConfiguredWrapper(keras.layers.Wrapper):
    """A wrapper named ``quant_<layer>`` with a `QuantizationConfig`, saved with it."""

    def __init__(self, layer, config=None, **kwargs):
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        self.config = config_lib.get(config)

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["config"] = keras.saving.serialize_keras_object(self.config)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"], custom_objects=custom_objects)
        config["config"] = config_lib.get(config["config"])
        return cls(**config)


class QuantizeBase(ConfiguredWrapper):
    """Base of the layer wrappers: a `QuantizationConfig` and activation quantizers.

    Subclasses create their `ActivationQuantizer` sublayers in `__init__`
    through `_quantizer`, so saving finds them by name.
    """

    def __init__(self, layer, config=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        self._quantizers = {}

    def _quantizer(self, role, fixed_range=None, symmetric=False):
        quantizer = quantizers.ActivationQuantizer(
            self.config, fixed_range=fixed_range, symmetric=symmetric, name=f"{self.name}_{role}"
        )
        self._quantizers[role] = quantizer
        return quantizer

    def build(self, input_shape=None):
        if not self.layer.built and input_shape is not None:
            self.layer.build(input_shape)
        for quantizer in self._quantizers.values():
            if not quantizer.built:
                quantizer.build()
        self.built = True

    @property
    def quantizers(self):
        """Role -> `ActivationQuantizer` of the ranges this wrapper learns."""
        return dict(self._quantizers)

    def _quantize_input(self, x, training):
        """Quantizes a float input unless a quantized layer produced it."""
        if fake_quant.is_marked(x) or not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
            return x
        return self._quantizers["input"](x, training=training)

    def _run(self, fn, mapping):
        """Runs `fn` with weights replaced by `mapping`, keeping range updates."""
        return _stateless.call_with_values(fn, mapping, self.variables)

    def _bias_values(self, layer, kernel, axes, grid, training, divisor=None):
        """``[(bias variable, value it runs with)]``, or ``[]`` when the bias runs as it is.

        TFLite stores a bias as int32 on the step input step × kernel step;
        inference rounds it there so the QAT model computes what the int8
        kernel computes. Training steps and exported graphs keep the float
        bias (the converter rounds it itself). A kernel divided per output
        channel has its bias divided too, in every kind of call.

        Args:
            layer: The layer holding the bias (``layer.bias``, may be None).
            kernel: Its kernel, already on the symmetric grid.
            axes: The kernel's per-channel reduction axes (None: per tensor).
            grid: The `ActivationQuantizer` of the layer's input, if known.
            training: The call's training flag.
            divisor: Optional per-output-channel divisor the kernel was divided by.
        """
        bias = getattr(layer, "bias", None)
        if bias is None:
            return []
        value = bias.value if divisor is None else bias.value / divisor
        if grid is not None and quantizers.emulates_kernels(training):
            input_step = fake_quant.grid_step(*grid.current_range(), self.config.activation_bits)
            return [(bias, fake_quant.bias_on_grid(value, input_step, kernel, axes, self.config.weight_bits))]
        return [] if divisor is None else [(bias, value)]

    def quantized_weights(self, compiled=False):
        """``(variable, fake-quantized value)`` pairs the layer runs with.

        Args:
            compiled: Round with XLA-compiled functions, as training steps
                do (see `fake_quant.fake_quant_symmetric`); never for a graph
                that is exported.
        """
        return []
