"""`QuantizeEmbedding`: an int8 lookup table whose output keeps its range."""

import keras
from keras import ops

from kcompress.quantization import fake_quant
from kcompress.quantization.base import QuantizeBase


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeEmbedding(QuantizeBase):
    """Trains an `Embedding` (or keras-hub `ReversibleEmbedding`) for int8.

    TFLite's int8 GATHER reads an int8 table and returns rows on the same
    grid, so the table is quantized per tensor on its own range (kept in
    two variables, refreshed in training calls) and the output is marked
    as already quantized.

    Example:

    >>> import numpy as np
    >>> layer = QuantizeEmbedding(keras.layers.Embedding(10, 4))
    >>> y = layer(np.array([[1, 2]]), training=True)
    >>> float(layer.table_min.numpy()) <= float(np.min(y)) <= float(layer.table_max.numpy())
    True
    """

    def build(self, input_shape=None):
        super().build(input_shape)
        table = self.layer.embeddings
        self.table_min = self.add_weight(name="table_min", shape=(), initializer="zeros", trainable=False)
        self.table_max = self.add_weight(name="table_max", shape=(), initializer="zeros", trainable=False)
        self.refresh_range(table.value)

    def refresh_range(self, table=None):
        """Sets the stored range to the table's current minimum and maximum."""
        table = self.layer.embeddings.value if table is None else table
        self.table_min.assign(ops.minimum(ops.min(table), 0.0))
        self.table_max.assign(ops.maximum(ops.max(table), 0.0))

    def quantized_weights(self, compiled=False):
        table = self.layer.embeddings
        bits = self.config.weight_bits
        return [(table, fake_quant.fake_quant_range(table.value, self.table_min.value, self.table_max.value, bits))]

    def call(self, inputs, training=None):
        if training:
            self.refresh_range()
        y = self._run(lambda: self.layer(inputs), self.quantized_weights())
        # Same range as the table: a no-op that gives the converter GATHER's output range.
        y = fake_quant.fake_quant_range(y, self.table_min.value, self.table_max.value, self.config.weight_bits)
        return fake_quant.mark(y)
