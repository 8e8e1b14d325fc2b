"""`QuantizeKernel`: int8 weights and ranges for Dense, EinsumDense and Conv."""

import contextlib

import keras
from keras import ops

from kcompress._errors import expected_error
from kcompress.clustering import tying
from kcompress.quantization import fake_quant
from kcompress.quantization.base import QuantizeBase


def _einsum_input_axes(layer):
    """Kernel axes summed over: those absent from the output."""
    _, rest = layer.equation.split(",")
    kernel, output = rest.split("->")
    return tuple(i for i, dim in enumerate(kernel) if dim not in output)


def _all_but_last(layer):
    return tuple(range(len(layer.kernel.shape) - 1))


_L = keras.layers
# Layer class -> kernel axes that share one scale (all but the output channel).
INPUT_AXES = {
    _L.Dense: lambda layer: (0,),
    _L.EinsumDense: _einsum_input_axes,
    _L.Conv1D: _all_but_last,
    _L.Conv2D: _all_but_last,
    _L.DepthwiseConv2D: lambda layer: (0, 1),
}

# Activations TFLite fuses into FULLY_CONNECTED / CONV_2D: one range after them.
_FUSED = (keras.activations.linear, keras.activations.relu, keras.activations.relu6)


def input_axes(layer):
    """The per-channel reduction axes of `layer`'s kernel."""
    for base in type(layer).__mro__:
        if base in INPUT_AXES:
            return INPUT_AXES[base](layer)
    return None


@contextlib.contextmanager
def _linear(layer):
    """Runs `layer` without its activation (applied by the wrapper instead)."""
    activation = layer.activation
    object.__setattr__(layer, "activation", keras.activations.linear)
    try:
        yield activation
    finally:
        object.__setattr__(layer, "activation", activation)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeKernel(QuantizeBase):
    """Trains a Dense, EinsumDense, Conv1D/2D or DepthwiseConv2D layer for int8.

    The kernel runs rounded to a symmetric int8 grid with one scale per
    output channel (or per tensor); the layer's output (and its input, when
    no quantized layer produced it) runs rounded to an int8 range learnt
    while training. An activation TFLite cannot fuse (GELU, tanh, ...) gets
    a range before and after it, as the int8 graph has both tensors.

    Args:
        layer: The layer to wrap.
        config: A `QuantizationConfig`.
        quantize_output: Whether to quantize the output here. The attention
            wrapper turns it off for the projections it quantizes itself.
        keep_zeros: Keep the kernel's zero weights at zero (sparsity-
            preserving QAT). Default: when the config asks for it and the
            built kernel has zeros.
        tied_clusters: Number of distinct kernel values kept tied
            (cluster-preserving QAT), 0 for none. Default: when the config
            asks for it, the number of distinct values of the built kernel
            if it has at most 256.
        **kwargs: Base layer arguments.

    Example:

    >>> import numpy as np
    >>> layer = QuantizeKernel(keras.layers.Dense(3, activation="gelu"))
    >>> y = layer(np.random.rand(2, 4).astype("float32"), training=True)
    >>> sorted(layer.quantizers)
    ['input', 'output', 'pre_activation']
    """

    def __init__(self, layer, config=None, quantize_output=True, keep_zeros=None, tied_clusters=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        if input_axes(layer) is None:
            raise expected_error(
                f"a layer with a kernel ({', '.join(c.__name__ for c in INPUT_AXES)})",
                layer=f"{layer.name} ({type(layer).__name__})",
            )
        self.quantize_output = bool(quantize_output)
        if keep_zeros is None:
            keep_zeros = (
                self.config.preserve_sparsity and layer.built and bool(ops.any(ops.equal(layer.kernel.value, 0)))
            )
        self.keep_zeros = bool(keep_zeros)
        if tied_clusters is None:
            wanted = self.config.preserve_clusters and layer.built
            ties = tying.find_ties(ops.convert_to_numpy(layer.kernel)) if wanted else None
            tied_clusters = ties[0] if ties else 0
        self.tied_clusters = int(tied_clusters)
        self._quantizer("input")
        self._fused = getattr(layer, "activation", keras.activations.linear) in _FUSED
        if not self._fused:
            self._quantizer("pre_activation")
        if self.quantize_output:
            self._quantizer("output")

    def build(self, input_shape=None):
        super().build(input_shape)
        self._sparsity_mask = None
        if self.keep_zeros:
            kernel = self.layer.kernel
            self._sparsity_mask = self.add_weight(
                name="sparsity_mask", shape=kernel.shape, initializer="ones", trainable=False
            )
            self._sparsity_mask.assign(ops.cast(ops.not_equal(kernel.value, 0.0), self._sparsity_mask.dtype))
        self._cluster_assignments = None
        if self.tied_clusters:
            kernel = self.layer.kernel
            self._cluster_assignments = self.add_weight(
                name="cluster_assignments", shape=kernel.shape, dtype="int32", initializer="zeros", trainable=False
            )
            ties = tying.find_ties(ops.convert_to_numpy(kernel), self.tied_clusters)
            if ties is not None:  # Else a fresh kernel, about to be loaded with the saved assignments.
                self._cluster_assignments.assign(ties[1])

    def quantized_weights(self):
        kernel = self.layer.kernel
        value = kernel.value
        if getattr(self, "_cluster_assignments", None) is not None:
            value = tying.tie(value, self._cluster_assignments.value, self.tied_clusters)
        if getattr(self, "_sparsity_mask", None) is not None:
            value = value * self._sparsity_mask.value
        axes = input_axes(self.layer) if self.config.per_channel else None
        return [(kernel, fake_quant.fake_quant_symmetric(value, axes, self.config.weight_bits))]

    def call(self, inputs, training=None):
        x = self._quantize_input(inputs, training)
        mapping = self.quantized_weights()
        if self._fused:
            y = self._run(lambda: self.layer(x), mapping)
        else:
            with _linear(self.layer) as activation:
                y = self._run(lambda: self.layer(x), mapping)
            y = activation(self._quantizers["pre_activation"](y, training=training))
        if self.quantize_output:
            y = self._quantizers["output"](y, training=training)
        return y

    def get_config(self):
        config = super().get_config()
        config["quantize_output"] = self.quantize_output
        config["keep_zeros"] = self.keep_zeros
        config["tied_clusters"] = self.tied_clusters
        return config
