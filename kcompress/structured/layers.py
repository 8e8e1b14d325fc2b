"""`PrunedTransformerEncoder`: a keras-hub encoder layer with an explicit head size."""

import keras
from keras_hub.layers import TransformerEncoder
from keras_hub.src.utils.keras_utils import clone_initializer


@keras.saving.register_keras_serializable(package="kcompress")
class PrunedTransformerEncoder(TransformerEncoder):
    """A keras-hub `TransformerEncoder` whose head size is not tied to the width.

    keras-hub's encoder derives the head size as ``hidden_dim // num_heads``,
    so removing heads would change the size of the heads that are kept.
    This subclass takes the head size explicitly (`key_dim`), so a layer can
    have any number of heads of the original size and any intermediate size.
    Its sublayers, their names and `call` are keras-hub's, so everything that
    works on a keras-hub encoder (pruning, quantization, TFLite export) works
    on it too.

    Args:
        intermediate_dim: int. Units of the first feed-forward `Dense`.
        num_heads: int. Number of attention heads.
        key_dim: int or None. Size of each attention head (query, key and
            value). None: ``hidden_dim // num_heads``, as in keras-hub.
        **kwargs: The other arguments of `keras_hub.layers.TransformerEncoder`
            (dropout, activation, layer_norm_epsilon, initializers,
            normalize_first, name, dtype, ...).

    Example:

    >>> import numpy as np
    >>> layer = PrunedTransformerEncoder(intermediate_dim=24, num_heads=3, key_dim=8)
    >>> tuple(layer(np.zeros((2, 5, 16), "float32")).shape)
    (2, 5, 16)
    >>> tuple(layer._self_attention_layer._query_dense.kernel.shape)
    (16, 3, 8)
    """

    def __init__(self, intermediate_dim, num_heads, key_dim=None, **kwargs):
        super().__init__(intermediate_dim=intermediate_dim, num_heads=num_heads, **kwargs)
        self.key_dim = key_dim

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        key_dim = self.key_dim if self.key_dim is not None else int(hidden_dim // self.num_heads)
        if key_dim < 1:
            raise ValueError(
                f"Expected key_dim >= 1 (or hidden_dim >= num_heads). Received: key_dim={key_dim}, "
                f"hidden_dim={hidden_dim}, num_heads={self.num_heads}"
            )
        self._self_attention_layer = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="self_attention_layer",
        )
        self._self_attention_layer.build(query_shape=inputs_shape, value_shape=inputs_shape)
        self._self_attention_layer_norm = self._layer_norm("self_attention_layer_norm", inputs_shape)
        self._self_attention_dropout = keras.layers.Dropout(
            rate=self.dropout, dtype=self.dtype_policy, name="self_attention_dropout"
        )
        self._feedforward_layer_norm = self._layer_norm("feedforward_layer_norm", inputs_shape)
        self._feedforward_intermediate_dense = self._dense(
            self.intermediate_dim, "feedforward_intermediate_dense", inputs_shape, self.activation
        )
        intermediate_shape = (*inputs_shape[:-1], self.intermediate_dim)
        self._feedforward_output_dense = self._dense(hidden_dim, "feedforward_output_dense", intermediate_shape)
        self._feedforward_dropout = keras.layers.Dropout(
            rate=self.dropout, dtype=self.dtype_policy, name="feedforward_dropout"
        )
        self.built = True

    def _layer_norm(self, name, shape):
        layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)
        layer.build(shape)
        return layer

    def _dense(self, units, name, shape, activation=None):
        layer = keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )
        layer.build(shape)
        return layer

    def get_config(self):
        return {**super().get_config(), "key_dim": self.key_dim}
