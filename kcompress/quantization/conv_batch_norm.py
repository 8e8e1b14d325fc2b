"""`QuantizeConvBatchNorm`: a Conv/Dense with its BatchNormalization folded in, trained for int8."""

import keras
from keras import ops

from kcompress._errors import expected_error
from kcompress.quantization import fake_quant, folding, quantizers
from kcompress.quantization.kernel import QuantizeKernel


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeConvBatchNorm(QuantizeKernel):
    """Trains ``layer → BatchNormalization [→ ReLU/ReLU6]`` as the one int8 op TFLite runs.

    The converter folds a BatchNormalization into the kernel and bias of
    the Conv2D, DepthwiseConv2D, Conv1D or Dense before it, so the int8
    kernel is ``kernel × γ / σ`` rounded per output channel. This wrapper
    trains that kernel, as tfmot's default 8-bit scheme does:

    - training calls run the convolution with the folded kernel on the
      moving σ, undo the per-channel scale, and normalize with the batch
      statistics (which also move the moving mean and variance);
    - inference calls (and exported graphs) run the folded kernel and the
      folded bias ``β + (b − μ) γ / σ`` on the frozen moving statistics.

    A ReLU or ReLU6 after the normalization is fused: one output range
    after it. A BatchNormalization that is not trainable (frozen, as in
    fine-tuning) uses its moving statistics in training calls too.
    `quantize_model` builds these from the chains `folding.find_folds`
    finds; the normalization and activation layers of the chain become
    `folding.FoldedLayer`s keeping their names.

    Args:
        layer: The Conv2D, DepthwiseConv2D, Conv1D or Dense layer (linear
            activation, channels last).
        config: A `QuantizationConfig`.
        batch_norm: The `BatchNormalization` after it (last axis).
        activation: None, ``"relu"`` or ``"relu6"``: the activation fused after the normalization.
        **kwargs: `QuantizeKernel` arguments (``keep_zeros``, ``tied_clusters``, ...).

    Example:

    >>> import numpy as np
    >>> conv, norm = keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()
    >>> _ = norm(conv(np.ones((1, 5, 5, 2), "float32")))
    >>> layer = QuantizeConvBatchNorm(conv, batch_norm=norm, activation="relu6")
    >>> layer(np.random.rand(2, 5, 5, 2).astype("float32"), training=True).shape
    TensorShape([2, 3, 3, 4])
    """

    def __init__(self, layer, config=None, batch_norm=None, activation=None, **kwargs):
        if folding.FOLDABLE.lookup(type(layer)) is None:
            raise expected_error(
                f"a layer a BatchNormalization folds into ({folding.FOLDABLE.names()})",
                layer=f"{layer.name} ({type(layer).__name__})",
            )
        if not isinstance(batch_norm, keras.layers.BatchNormalization):
            raise expected_error("batch_norm to be a keras.layers.BatchNormalization", batch_norm=batch_norm)
        if activation not in folding.ACTIVATIONS:
            raise expected_error("activation None, 'relu' or 'relu6'", activation=activation)
        if layer.activation is not keras.activations.linear:
            raise expected_error(
                "a layer with a linear activation before its BatchNormalization",
                layer=f"{layer.name} (activation={layer.activation.__name__})",
            )
        # The folding and the normalization in float32 under any policy; the layer itself runs in its own.
        kwargs.setdefault("dtype", "float32")
        super().__init__(layer, config, **kwargs)
        self.batch_norm = batch_norm
        self.activation = activation

    def build(self, input_shape=None):
        super().build(input_shape)
        if not self.batch_norm.built:
            shape = self.layer.compute_output_shape(input_shape) if input_shape is not None else None
            if shape is None:
                shape = (None, self._channels())
            self.batch_norm.build(shape)
        self.built = True

    def _channels(self):
        size = 1
        for dim in folding.channel_shape(self.layer):
            size *= dim
        return size

    def _per_channel(self, vector):
        """A per-output-channel vector reshaped to broadcast against the kernel."""
        return ops.reshape(vector, folding.channel_shape(self.layer))

    def _statistics(self):
        """``(γ, β, μ, σ)`` of the moving statistics, as float32 vectors over the output channels."""
        norm = self.batch_norm
        gamma = norm.gamma.value if norm.scale else ops.ones_like(norm.moving_mean.value)
        beta = norm.beta.value if norm.center else ops.zeros_like(norm.moving_mean.value)
        sigma = ops.sqrt(norm.moving_variance.value + norm.epsilon)
        return gamma, beta, norm.moving_mean.value, sigma

    def _folded_bias(self, gamma, beta, mean, sigma):
        bias = self.layer.bias.value if self.layer.use_bias else ops.zeros_like(mean)
        return beta + (bias - mean) * gamma / sigma

    def folded_float_weights(self):
        """``(kernel × γ / σ, β + (b − μ) γ / σ)`` on the moving statistics, in float: what the converter folds."""
        gamma, beta, mean, sigma = self._statistics()
        return self.layer.kernel.value / self._per_channel(sigma / gamma), self._folded_bias(gamma, beta, mean, sigma)

    def folded_weights(self, compiled=False):
        """``(folded kernel on the int8 grid, folded float bias)`` on the moving statistics."""
        gamma, beta, mean, sigma = self._statistics()
        kernel = super().quantized_weights(compiled, output_divisor=self._per_channel(sigma / gamma))[0][1]
        return kernel, self._folded_bias(gamma, beta, mean, sigma)

    def quantized_weights(self, compiled=False):
        """``[(kernel, folded kernel on the int8 grid)]``: the kernel inference runs (and the int8 file holds)."""
        return [(self.layer.kernel, self.folded_weights(compiled)[0])]

    def _linear(self, x, kernel):
        """The layer's output for `kernel`, without its bias, in float32 (the normalization's dtype)."""
        mapping = [(self.layer.kernel, kernel)]
        if self.layer.use_bias:
            mapping.append((self.layer.bias, ops.zeros_like(self.layer.bias.value)))
        return ops.cast(self._run(lambda: self.layer(x), mapping), "float32")

    def _batch_normalized(self, x):
        """Training: the folded kernel on the moving σ, rescaled, then normalized on the batch statistics."""
        norm = self.batch_norm
        gamma, beta, _, sigma = self._statistics()
        divisor = sigma / gamma
        kernel = super().quantized_weights(compiled=True, output_divisor=self._per_channel(divisor))[0][1]
        # A channel with γ = 0 has a zero folded kernel (divisor inf): keep its output 0, not 0 × inf.
        undo = ops.where(ops.isfinite(divisor), divisor, ops.zeros_like(divisor))
        y = self._linear(x, kernel) * undo
        if self.layer.use_bias:
            y = y + self.layer.bias.value
        axes = list(range(len(y.shape) - 1))
        mean, variance = ops.moments(y, axes)
        momentum = norm.momentum
        norm.moving_mean.assign(norm.moving_mean * momentum + ops.stop_gradient(mean) * (1.0 - momentum))
        norm.moving_variance.assign(norm.moving_variance * momentum + ops.stop_gradient(variance) * (1.0 - momentum))
        return (y - mean) * (gamma / ops.sqrt(variance + norm.epsilon)) + beta

    def call(self, inputs, training=None):
        x = self._quantize_input(inputs, training) if self.quantize_input else inputs
        if training and self.batch_norm.trainable and self.trainable:
            y = self._batch_normalized(x)
        else:
            kernel, bias = self.folded_weights(compiled=bool(training))
            grid = fake_quant.quantizer_of(x)
            if grid is not None and quantizers.emulates_kernels(training):
                # TFLite stores the bias as int32 on the step input step × kernel step.
                step = fake_quant.grid_step(*grid.current_range(), self.config.activation_bits)
                axes = self._axes if self.config.per_channel else None
                bias = fake_quant.bias_on_grid(bias, step, kernel, axes, self.config.weight_bits)
            y = self._linear(x, kernel) + bias
        y = folding.ACTIVATIONS[self.activation](y)
        return self._quantizers["output"](y, training=training)

    def stripped_layer(self):
        """A plain copy of the layer with the folded int8-grid kernel and the folded bias."""
        kernel, bias = self.folded_weights()
        config = self.layer.get_config()
        config.update(use_bias=True)
        plain = type(self.layer).from_config(config)
        plain.build(self.get_build_config()["input_shape"] if self.get_build_config() else None)
        plain.kernel.assign(kernel)
        plain.bias.assign(bias)
        return plain

    def get_config(self):
        config = super().get_config()
        config["batch_norm"] = keras.saving.serialize_keras_object(self.batch_norm)
        config["activation"] = self.activation
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["batch_norm"] = keras.saving.deserialize_keras_object(
            config["batch_norm"], custom_objects=custom_objects
        )
        return super().from_config(config, custom_objects)
