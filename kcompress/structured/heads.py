"""Attention heads of a `MultiHeadAttention`: their weights, magnitude, removal and masking.

A head ``h`` owns slice ``[:, h, :]`` of the query, key and value kernels
(``[h, :]`` of their biases) and slice ``[h, :, :]`` of the output kernel.
"""

import numpy as np
from keras import ops

_INPUT_PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense")


def _numpy(variable):
    return ops.convert_to_numpy(variable.value)


def magnitude(attention):
    """Per-head L2 norm of the head's query, key, value and output kernel slices.

    Example:

    >>> import keras
    >>> attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    >>> attention.build((1, 4, 8), (1, 4, 8))
    >>> magnitude(attention).shape
    (2,)
    """
    squares = sum(np.sum(_numpy(getattr(attention, name).kernel) ** 2, axis=(0, 2)) for name in _INPUT_PROJECTIONS)
    squares = squares + np.sum(_numpy(attention._output_dense.kernel) ** 2, axis=(1, 2))
    return np.sqrt(squares)


def copy_kept(source, target, keep):
    """Copies the kept heads of `source` into `target`, built with ``len(keep)`` heads."""
    keep = list(keep)
    for name in _INPUT_PROJECTIONS:
        values = [_numpy(v) for v in getattr(source, name).weights]
        sliced = [values[0][:, keep, :]] + [bias[keep] for bias in values[1:]]
        getattr(target, name).set_weights(sliced)
    values = [_numpy(v) for v in source._output_dense.weights]
    target._output_dense.set_weights([values[0][keep]] + values[1:])


def masks(attention, keep):
    """``[(variable, 0/1 array)]``: multiplying each variable by its array silences every head not in `keep`."""
    kernel = attention._output_dense.kernel
    mask = np.zeros(tuple(kernel.shape), "float32")
    mask[list(keep)] = 1.0
    return [(kernel, mask)]
