"""The one table of what can be clustered: layer class -> weight names.

Dispatch is by the layer's class and its base classes, so keras-hub's
`ReversibleEmbedding` counts as an `Embedding` and the `EinsumDense`
projections inside attention layers count as `EinsumDense`. Biases,
normalization and position embeddings are never clustered (they are small
and sensitive).
"""

import keras

from kcompress._layer_table import LayerTable

_L = keras.layers
CLUSTERABLE = LayerTable(
    {
        _L.Dense: ("kernel",),
        _L.EinsumDense: ("kernel",),
        _L.Conv1D: ("kernel",),
        _L.Conv2D: ("kernel",),
        _L.Conv3D: ("kernel",),
        _L.DepthwiseConv2D: ("kernel",),
        _L.SeparableConv2D: ("depthwise_kernel", "pointwise_kernel"),
        _L.Embedding: ("embeddings",),
    }
)


def lookup(layer_or_class):
    """The names of the weights to cluster in a layer (or class), or None.

    Example:

    >>> lookup(keras.layers.Dense(4))
    ('kernel',)
    >>> lookup(keras.layers.LayerNormalization()) is None
    True
    """
    return CLUSTERABLE.lookup(layer_or_class)


def supported_names():
    """Class names that can be clustered, for error messages."""
    return CLUSTERABLE.names()
