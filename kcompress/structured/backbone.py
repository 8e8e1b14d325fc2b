"""`PrunedBertBackbone`: a BERT encoder whose layers may each have their own size."""

import keras
import keras_hub
from keras.layers import ReversibleEmbedding
from keras_hub.layers import PositionEmbedding
from keras_hub.src.models.backbone import Backbone
from keras_hub.src.utils.keras_utils import gelu_approximate

from kcompress._errors import check_int, expected_error
from kcompress.structured.layers import PrunedTransformerEncoder


def _initializer():
    return keras.initializers.TruncatedNormal(stddev=0.02)  # BERT's, as in keras-hub.


@keras.saving.register_keras_serializable(package="kcompress")
class PrunedBertBackbone(keras_hub.models.BertBackbone):
    """A keras-hub `BertBackbone` with per-layer head counts and FFN sizes.

    Same inputs, outputs, layer names and computation as `BertBackbone`
    (it is one: `isinstance` holds and `BertTextClassifier` takes it), but
    layer ``i`` has ``num_heads[i]`` heads of size `key_dim` and
    ``intermediate_dim[i]`` feed-forward units. `prune_transformer` returns
    models built on it.

    Args:
        vocabulary_size: int. Token vocabulary size.
        num_heads: list of int, one per transformer layer (its length is the
            number of layers).
        hidden_dim: int. Width of the encoder.
        intermediate_dim: list of int, one per transformer layer.
        key_dim: int. Size of every attention head.
        dropout: float. Dropout of the embeddings and encoder layers.
        max_sequence_length: int. Number of position embeddings.
        num_segments: int. Number of segment ids.
        dtype: Optional dtype or dtype policy.
        **kwargs: `keras.Model` arguments (name, trainable).

    Example:

    >>> import numpy as np
    >>> backbone = PrunedBertBackbone(vocabulary_size=50, num_heads=[2, 1], hidden_dim=8,
    ...                               intermediate_dim=[16, 4], key_dim=4, max_sequence_length=6)
    >>> x = {"token_ids": np.ones((1, 6), "int32"), "segment_ids": np.zeros((1, 6), "int32"),
    ...      "padding_mask": np.ones((1, 6), "int32")}
    >>> tuple(backbone(x)["pooled_output"].shape)
    (1, 8)
    """

    def __init__(
        self,
        vocabulary_size,
        num_heads,
        hidden_dim,
        intermediate_dim,
        key_dim,
        dropout=0.1,
        max_sequence_length=512,
        num_segments=2,
        dtype=None,
        **kwargs,
    ):
        num_heads = [check_int("num_heads", n, minimum=1) for n in num_heads]
        intermediate_dim = [check_int("intermediate_dim", n, minimum=1) for n in intermediate_dim]
        if len(num_heads) != len(intermediate_dim) or not num_heads:
            raise expected_error(
                "num_heads and intermediate_dim with one entry per layer (at least one layer)",
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
            )
        self.token_embedding = ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            embeddings_initializer=_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            initializer=_initializer(), sequence_length=max_sequence_length, dtype=dtype, name="position_embedding"
        )
        self.segment_embedding = keras.layers.Embedding(
            input_dim=num_segments,
            output_dim=hidden_dim,
            embeddings_initializer=_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            axis=-1, epsilon=1e-12, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            PrunedTransformerEncoder(
                num_heads=heads,
                key_dim=key_dim,
                intermediate_dim=units,
                activation=gelu_approximate,
                dropout=dropout,
                layer_norm_epsilon=1e-12,
                kernel_initializer=_initializer(),
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i, (heads, units) in enumerate(zip(num_heads, intermediate_dim))
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=_initializer(), activation="tanh", dtype=dtype, name="pooled_dense"
        )

        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in ("token_ids", "segment_ids", "padding_mask")
        }
        tokens = self.token_embedding(inputs["token_ids"])
        positions = self.position_embedding(tokens)
        segments = self.segment_embedding(inputs["segment_ids"])
        x = self.embeddings_add((tokens, positions, segments))
        x = self.embeddings_layer_norm(x)
        x = self.embeddings_dropout(x)
        for layer in self.transformer_layers:
            x = layer(x, padding_mask=inputs["padding_mask"])
        pooled_output = self.pooled_dense(x[:, 0, :])
        Backbone.__init__(
            self,
            inputs=inputs,
            outputs={"sequence_output": x, "pooled_output": pooled_output},
            dtype=dtype,
            **kwargs,
        )

        self.vocabulary_size = vocabulary_size
        self.num_layers = len(num_heads)
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.key_dim = key_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.cls_token_index = 0

    def get_config(self):
        return {
            **Backbone.get_config(self),
            "vocabulary_size": self.vocabulary_size,
            "num_heads": list(self.num_heads),
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": list(self.intermediate_dim),
            "key_dim": self.key_dim,
            "dropout": self.dropout,
            "max_sequence_length": self.max_sequence_length,
            "num_segments": self.num_segments,
        }
