"""`QuantizeKernel` and `QuantizeSeparableConv`: int8 weights and ranges for Dense, EinsumDense and Conv."""

import contextlib

import keras
import numpy as np
from keras import ops

from kcompress._errors import expected_error
from kcompress._layer_table import LayerTable
from kcompress.clustering import tying
from kcompress.quantization import fake_quant, fixed_ranges
from kcompress.quantization.base import QuantizeBase


def _einsum_input_axes(layer):
    """Kernel axes summed over: those absent from the output."""
    _, rest = layer.equation.split(",")
    kernel, output = rest.split("->")
    return tuple(i for i, dim in enumerate(kernel) if dim not in output)


def _all_but_last(layer):
    """Kernel axes of a convolution: its window and input channels (rank + 1 of them)."""
    return tuple(range(layer.rank + 1))


_L = keras.layers
# Layer class -> kernel axes that share one scale (all but the output channel).
INPUT_AXES = LayerTable(
    {
        _L.Dense: lambda layer: (0,),
        _L.EinsumDense: _einsum_input_axes,
        _L.Conv1D: _all_but_last,
        _L.Conv2D: _all_but_last,
        _L.DepthwiseConv2D: lambda layer: (0, 1),
    }
)

# Activations TFLite fuses into FULLY_CONNECTED / CONV_2D: one range after them.
_FUSED = (keras.activations.linear, keras.activations.relu, keras.activations.relu6)


def input_axes(layer):
    """The per-channel reduction axes of `layer`'s kernel, or None if it has none we know."""
    rule = INPUT_AXES.lookup(type(layer))
    return None if rule is None else rule(layer)


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
    a range before and after it, as the int8 graph has both tensors; after
    tanh and sigmoid that range is their int8 kernel's fixed grid
    (`fixed_ranges`). Inference calls add the bias rounded to the int32 grid
    TFLite stores it on (input step × kernel step).

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
        quantize_input: Whether a float input gets a range here. Off when
            the input is a view (slice, reshape, ...) of a tensor already
            quantized upstream: the int8 graph keeps that tensor's scale
            through the view, so a second range would contradict it.
        **kwargs: Base layer arguments.

    Example:

    >>> import numpy as np
    >>> layer = QuantizeKernel(keras.layers.Dense(3, activation="gelu"))
    >>> y = layer(np.random.rand(2, 4).astype("float32"), training=True)
    >>> sorted(layer.quantizers)
    ['input', 'output', 'pre_activation']
    """

    def __init__(
        self,
        layer,
        config=None,
        quantize_output=True,
        keep_zeros=None,
        tied_clusters=None,
        quantize_input=True,
        **kwargs,
    ):
        super().__init__(layer, config, **kwargs)
        if INPUT_AXES.lookup(type(layer)) is None:  # By class: the layer may not be built yet.
            raise expected_error(
                f"a layer with a kernel ({INPUT_AXES.names()})",
                layer=f"{layer.name} ({type(layer).__name__})",
            )
        self.quantize_output = bool(quantize_output)
        self.quantize_input = bool(quantize_input)
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
        activation = getattr(layer, "activation", keras.activations.linear)
        self._fused = activation in _FUSED
        if not self._fused:
            self._quantizer("pre_activation")
        if self.quantize_output:
            self._quantizer("output", fixed_range=None if self._fused else fixed_ranges.for_activation(activation))

    def build(self, input_shape=None):
        super().build(input_shape)
        self._axes = input_axes(self.layer)
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

    def quantized_weights(self, compiled=False, output_divisor=None):
        kernel = self.layer.kernel
        value = kernel.value
        if getattr(self, "_cluster_assignments", None) is not None:
            value = tying.tie(value, self._cluster_assignments.value, self.tied_clusters)
        if getattr(self, "_sparsity_mask", None) is not None:
            value = value * self._sparsity_mask.value
        if output_divisor is not None:
            # Per output channel, before rounding: the per-channel scales take the division exactly.
            value = value / output_divisor
        axes = self._axes if self.config.per_channel else None
        return [(kernel, fake_quant.fake_quant_symmetric(value, axes, self.config.weight_bits, compiled))]

    def call(self, inputs, training=None, output_divisor=None):
        """Runs the layer; with `output_divisor` (Dense only), output channel c comes out divided by it[c]."""
        x = self._quantize_input(inputs, training) if self.quantize_input else inputs
        if output_divisor is not None:
            if not isinstance(self.layer, keras.layers.Dense) or not self._fused:
                raise expected_error(
                    "output_divisor only for a Dense layer with a linear or ReLU activation",
                    layer=f"{self.layer.name} ({type(self.layer).__name__})",
                )
            output_divisor = ops.convert_to_tensor(np.asarray(output_divisor, "float32"))
        mapping = self.quantized_weights(compiled=bool(training), output_divisor=output_divisor)
        grid = fake_quant.quantizer_of(x)
        axes = self._axes if self.config.per_channel else None
        mapping += self._bias_values(self.layer, mapping[0][1], axes, grid, training, output_divisor)
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
        config["quantize_input"] = self.quantize_input
        config["keep_zeros"] = self.keep_zeros
        config["tied_clusters"] = self.tied_clusters
        return config


def _has_zeros(kernel):
    return bool(ops.any(ops.equal(kernel.value, 0)))


def _tied_count(kernel):
    ties = tying.find_ties(ops.convert_to_numpy(kernel))
    return ties[0] if ties else 0


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeSeparableConv(QuantizeBase):
    """Trains a `SeparableConv2D` for int8, as TFLite runs it.

    The converter lowers the layer to DEPTHWISE_CONV_2D then a 1x1 CONV_2D
    (which takes the bias and a fusable activation), so this wrapper runs
    the same two steps: both kernels rounded to a symmetric int8 grid (per
    depthwise output channel, i.e. input channel × multiplier, and per
    filter), with a learnt range for the tensor between them.

    Args:
        layer: The `SeparableConv2D` to wrap.
        config: A `QuantizationConfig`.
        keep_zeros: Names of the kernels whose zero weights stay zero
            (sparsity-preserving QAT). Default: when the config asks for
            it, the built kernels that have zeros.
        tied_clusters: ``kernel name -> number of distinct values`` kept
            tied (cluster-preserving QAT). Default: when the config asks for
            it, the built kernels with at most 256 distinct values.
        **kwargs: Base layer arguments.

    Example:

    >>> import numpy as np
    >>> layer = QuantizeSeparableConv(keras.layers.SeparableConv2D(4, 3))
    >>> y = layer(np.random.rand(1, 5, 5, 2).astype("float32"), training=True)
    >>> sorted(layer.quantizers)
    ['depthwise', 'input', 'output']
    """

    KERNELS = ("depthwise_kernel", "pointwise_kernel")

    def __init__(self, layer, config=None, keep_zeros=None, tied_clusters=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        if not isinstance(layer, keras.layers.SeparableConv2D):
            raise expected_error("a SeparableConv2D layer", layer=f"{layer.name} ({type(layer).__name__})")
        if keep_zeros is None:
            wanted = self.config.preserve_sparsity and layer.built
            keep_zeros = [name for name in self.KERNELS if wanted and _has_zeros(getattr(layer, name))]
        self.keep_zeros = list(keep_zeros)
        if tied_clusters is None:
            wanted = self.config.preserve_clusters and layer.built
            counts = {name: _tied_count(getattr(layer, name)) for name in self.KERNELS} if wanted else {}
            tied_clusters = {name: count for name, count in counts.items() if count}
        self.tied_clusters = {name: int(count) for name, count in tied_clusters.items()}
        self._quantizer("input")
        self._quantizer("depthwise")
        self._fused = layer.activation in _FUSED
        if not self._fused:
            self._quantizer("pre_activation")
        self._quantizer("output", fixed_range=None if self._fused else fixed_ranges.for_activation(layer.activation))

    def build(self, input_shape=None):
        super().build(input_shape)
        rank = self.layer.rank
        # Depthwise (window..., in, multiplier): one scale per in × multiplier; pointwise: per filter.
        self._axes = {"depthwise_kernel": tuple(range(rank)), "pointwise_kernel": tuple(range(rank + 1))}
        self._masks = {name: self._sparsity_mask(name) for name in self.keep_zeros}
        self._assignments = {name: self._cluster_assignments(name, n) for name, n in self.tied_clusters.items()}

    def _sparsity_mask(self, name):
        """A variable that is 1 where kernel `name` is nonzero."""
        kernel = getattr(self.layer, name)
        mask = self.add_weight(name=f"{name}_sparsity_mask", shape=kernel.shape, initializer="ones", trainable=False)
        mask.assign(ops.cast(ops.not_equal(kernel.value, 0.0), mask.dtype))
        return mask

    def _cluster_assignments(self, name, count):
        """A variable holding the cluster of each weight of kernel `name`."""
        kernel = getattr(self.layer, name)
        assignments = self.add_weight(
            name=f"{name}_cluster_assignments", shape=kernel.shape, dtype="int32", initializer="zeros", trainable=False
        )
        ties = tying.find_ties(ops.convert_to_numpy(kernel), count)
        if ties is not None:  # Else a fresh kernel, about to be loaded with the saved assignments.
            assignments.assign(ties[1])
        return assignments

    def quantized_weights(self, compiled=False):
        pairs = []
        for name in self.KERNELS:
            kernel = getattr(self.layer, name)
            value = kernel.value
            if name in self._assignments:
                value = tying.tie(value, self._assignments[name].value, self.tied_clusters[name])
            if name in self._masks:
                value = value * self._masks[name].value
            axes = self._axes[name] if self.config.per_channel else None
            pairs.append((kernel, fake_quant.fake_quant_symmetric(value, axes, self.config.weight_bits, compiled)))
        return pairs

    def call(self, inputs, training=None):
        layer = self.layer
        x = self._quantize_input(inputs, training)
        (_, depthwise), (_, pointwise) = self.quantized_weights(compiled=bool(training))
        y = ops.depthwise_conv(
            x,
            depthwise,
            strides=layer.strides,
            padding=layer.padding,
            data_format=layer.data_format,
            dilation_rate=layer.dilation_rate,
        )
        y = self._quantizers["depthwise"](y, training=training)
        y = ops.conv(y, pointwise, strides=1, padding="valid", data_format=layer.data_format)
        if layer.use_bias:
            channels_last = layer.data_format == "channels_last"
            shape = (1,) * (layer.rank + 1) + (-1,) if channels_last else (1, -1) + (1,) * layer.rank
            axes = self._axes["pointwise_kernel"] if self.config.per_channel else None
            # The 1x1 CONV_2D's int32 bias: step = the depthwise output's step x the pointwise kernel's.
            rounded = self._bias_values(layer, pointwise, axes, self._quantizers["depthwise"], training)
            y = y + ops.reshape(rounded[0][1] if rounded else layer.bias.value, shape)
        if not self._fused:
            y = self._quantizers["pre_activation"](y, training=training)
        return self._quantizers["output"](layer.activation(y), training=training)

    def get_config(self):
        config = super().get_config()
        config["keep_zeros"] = self.keep_zeros
        config["tied_clusters"] = self.tied_clusters
        return config
