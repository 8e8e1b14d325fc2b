"""`QuantizeAttention`: multi-head attention as TFLite's int8 kernels run it."""

import keras
from keras import ops

from kcompress.clustering import tying
from kcompress.quantization import fake_quant, fixed_ranges
from kcompress.quantization.base import QuantizeBase
from kcompress.quantization.kernel import input_axes

_PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")


def _built_shapes(attention):
    """Input shapes of a built attention layer, read off its projections."""
    shapes = {}
    for role, name in (("query_shape", "_query_dense"), ("value_shape", "_value_dense"), ("key_shape", "_key_dense")):
        projection = getattr(attention, name)
        rank = len(projection.equation.split(",")[0])
        shapes[role] = (None,) * (rank - 1) + (int(projection.kernel.shape[0]),)
    return shapes


def _mask_bias(mask, low, high, bits):
    """An int8 bias that pushes masked scores below the scores' range: 0 where `mask`, else ``-2 (high - low)``.

    Adding it and quantizing on the scores' range clamps every masked score
    to the lowest level, as ``where(mask, scores, -inf)`` would. In the int8
    graph that is a SELECT on the mask alone (before it is broadcast over
    the heads) and an ADD that XNNPACK runs, instead of a SELECT over every
    head's scores on LiteRT's slower built-in kernel. The bias's grid is
    centred on zero (zero point 0, so TensorRT takes it too): both of its
    values are exact levels, and its step is four times the scores' step,
    within XNNPACK's limits for an int8 ADD.
    """
    depth = 2.0 * (high - low)
    bias = ops.where(mask, 0.0, -depth)
    return fake_quant.fake_quant_range(bias, *fake_quant.symmetric_range(depth, bits), bits)


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeAttention(QuantizeBase):
    """Trains a `MultiHeadAttention` (or a keras-hub subclass) for int8.

    Quantizes the four projection kernels per channel, and every tensor
    the int8 graph holds inside attention: the scaled query, key and value
    (on ranges centred on zero, which XNNPACK needs to run the int8
    matrix products), the masked scores, the softmax probabilities (on TFLite's fixed
    1/256 grid) and the context before the output projection. The scale
    1/sqrt(key_dim) is applied before the query's range so the converter
    can fold it into the query projection.

    Works by running the layer's own ``call`` (so masks and keras-hub's
    extra arguments behave as before) with its ``_compute_attention`` step
    swapped for a quantized one for the duration of the call.

    Example:

    >>> import numpy as np
    >>> attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> layer = QuantizeAttention(attention)
    >>> x = np.random.rand(1, 3, 8).astype("float32")
    >>> tuple(layer(x, x, training=True).shape)
    (1, 3, 8)
    """

    def __init__(self, layer, config=None, keep_zeros=None, tied_clusters=None, **kwargs):
        super().__init__(layer, config, **kwargs)
        if keep_zeros is None:
            keep_zeros = []
            if self.config.preserve_sparsity and layer.built:
                keep_zeros = [n for n in _PROJECTIONS if bool(ops.any(ops.equal(getattr(layer, n).kernel.value, 0)))]
        self.keep_zeros = list(keep_zeros)
        if tied_clusters is None:
            # Cluster-preserving QAT: projections with few distinct values keep them tied.
            tied_clusters = {}
            if self.config.preserve_clusters and layer.built:
                for name in _PROJECTIONS:
                    ties = tying.find_ties(ops.convert_to_numpy(getattr(layer, name).kernel))
                    if ties:
                        tied_clusters[name] = ties[0]
        self.tied_clusters = {name: int(count) for name, count in tied_clusters.items()}
        for role in ("input", "input_value", "input_key", "scores", "context", "output"):
            self._quantizer(role)
        # Query, key and value are operands of the two int8 BATCH_MATMULs: with zero point 0 XNNPACK
        # (LiteRT's CPU delegate) runs them; otherwise they fall back to ~10x slower built-in kernels.
        for role in ("query", "key", "value"):
            self._quantizer(role, symmetric=True)
        self._quantizer("probabilities", fixed_range=fixed_ranges.SOFTMAX)
        self._shapes = _built_shapes(layer) if layer.built else None

    def get_build_config(self):
        return {"shapes_dict": self._shapes} if self._shapes else None

    def build_from_config(self, config):
        if config and "shapes_dict" in config:
            # The saved shapes win over those read off the projections of a layer built from its own config.
            self._shapes = dict(config["shapes_dict"])
            self.build(**config["shapes_dict"])

    def build(self, query_shape, value_shape=None, key_shape=None):
        if not self.layer.built:
            self.layer.build(query_shape, value_shape or query_shape, key_shape)
        if self._shapes is None:
            self._shapes = {"query_shape": query_shape, "value_shape": value_shape or query_shape}
            if key_shape is not None:
                self._shapes["key_shape"] = key_shape
        super().build()
        self._masks = {}
        for name in self.keep_zeros:
            kernel = getattr(self.layer, name).kernel
            mask = self.add_weight(
                name=f"{name.strip('_')}_sparsity_mask", shape=kernel.shape, initializer="ones", trainable=False
            )
            mask.assign(ops.cast(ops.not_equal(kernel.value, 0.0), mask.dtype))
            self._masks[name] = mask
        self._assignments = {}
        for name, count in self.tied_clusters.items():
            kernel = getattr(self.layer, name).kernel
            assignments = self.add_weight(
                name=f"{name.strip('_')}_cluster_assignments",
                shape=kernel.shape,
                dtype="int32",
                initializer="zeros",
                trainable=False,
            )
            ties = tying.find_ties(ops.convert_to_numpy(kernel), count)
            if ties:
                assignments.assign(ties[1])
            self._assignments[name] = assignments

    def quantized_weights(self, compiled=False):
        pairs = []
        for name in _PROJECTIONS:
            projection = getattr(self.layer, name)
            kernel = projection.kernel
            value = kernel.value
            if name in self._assignments:
                value = tying.tie(value, self._assignments[name].value, self.tied_clusters[name])
            if name in self._masks:
                value = value * self._masks[name].value
            axes = input_axes(projection) if self.config.per_channel else None
            pairs.append((kernel, fake_quant.fake_quant_symmetric(value, axes, self.config.weight_bits, compiled)))
        return pairs

    def get_config(self):
        config = super().get_config()
        config["keep_zeros"] = self.keep_zeros
        config["tied_clusters"] = self.tied_clusters
        return config

    def _attend(self, query, key, value, attention_mask=None, training=None, return_attention_scores=False, **kw):
        attention = self.layer
        q = self._quantizers
        use_causal_mask = kw.get("use_causal_mask", False)
        if use_causal_mask:
            causal = attention._compute_causal_mask(query, value)
            attention_mask = (
                causal if attention_mask is None else ops.logical_and(ops.cast(attention_mask, "bool"), causal)
            )
        query = q["query"](query * (1.0 / float(attention._key_dim) ** 0.5), training=training)
        key = q["key"](key, training=training)
        value = q["value"](value, training=training)
        scores = q["scores"](ops.einsum(attention._dot_product_equation, key, query), training=training)
        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
            axis = -len(attention._attention_axes) * 2 - 1
            while len(mask.shape) < len(scores.shape):
                mask = ops.expand_dims(mask, axis=axis)
            bias = _mask_bias(mask, *q["scores"].current_range(), self.config.activation_bits)
            scores = q["scores"].apply(scores + bias)
        axis = attention._softmax.axis
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        probabilities = q["probabilities"](ops.softmax(scores, axis=axis))
        dropped = attention._dropout_layer(probabilities, training=training) if attention._dropout else probabilities
        context = ops.einsum(attention._combine_equation, dropped, value)
        context = q["context"](context, training=training)
        return context, probabilities

    def _quantize_inputs(self, query, value, key, training):
        """Quantizes float inputs no quantized layer produced (self-attention: once)."""
        quantized_query = self._quantize_input(query, training)
        if value is query:
            quantized_value = quantized_query
        elif fake_quant.is_marked(value):
            quantized_value = value
        else:
            quantized_value = self._quantizers["input_value"](value, training=training)
        if key is None or key is value:
            return quantized_query, quantized_value, None if key is None else quantized_value
        quantized_key = key if fake_quant.is_marked(key) else self._quantizers["input_key"](key, training=training)
        return quantized_query, quantized_value, quantized_key

    def call(self, query, value, key=None, training=None, **kwargs):
        attention = self.layer
        query, value, key = self._quantize_inputs(query, value, key, training)

        def run():
            object.__setattr__(attention, "_compute_attention", self._attend)
            try:
                return attention(query, value, key=key, training=training, **kwargs)
            finally:
                object.__delattr__(attention, "_compute_attention")

        mapping = self.quantized_weights(compiled=bool(training))
        inputs = {
            "_query_dense": fake_quant.quantizer_of(query),
            "_key_dense": fake_quant.quantizer_of(value if key is None else key),
            "_value_dense": fake_quant.quantizer_of(value),
            "_output_dense": self._quantizers["context"],
        }
        for name, (_, kernel) in zip(_PROJECTIONS, list(mapping)):
            projection = getattr(attention, name)
            axes = input_axes(projection) if self.config.per_channel else None
            mapping += self._bias_values(projection, kernel, axes, inputs[name], training)
        outputs = self._run(run, mapping)
        if isinstance(outputs, (tuple, list)):
            return (self._quantizers["output"](outputs[0], training=training), *outputs[1:])
        return self._quantizers["output"](outputs, training=training)
