"""The one table of what can be pruned: layer class -> weights and input axis.

Dispatch is by the layer's class (and its base classes, so keras-hub's
`ReversibleEmbedding` counts as an `Embedding` and its cached attention's
`EinsumDense` projections count as `EinsumDense`). Each entry names the weight
variables to prune and the axis along which N:M groups run (the kernel's input
axis). Biases, normalization and other weights are never in the table.
"""

import dataclasses

import keras

from kcompress._layer_table import LayerTable


@dataclasses.dataclass(frozen=True)
class PrunableWeights:
    """What to prune in one layer family.

    Attributes:
        input_axes: Weight variable name -> input (reduction) axis, or a
            callable ``layer -> axis`` when it depends on the layer.
        default: Whether the family is pruned when no `layers` filter names
            it. Embeddings are pruned only when asked for.
    """

    input_axes: dict
    default: bool = True


def _einsum_input_axis(layer):
    """Last kernel axis that is contracted with the input."""
    inputs, rest = layer.equation.split(",")
    kernel = rest.split("->")[0]
    contracted = [i for i, dim in enumerate(kernel) if dim in inputs]
    return contracted[-1] if contracted else 0


_L = keras.layers
PRUNABLE = LayerTable(
    {
        _L.Dense: PrunableWeights({"kernel": 0}),
        _L.EinsumDense: PrunableWeights({"kernel": _einsum_input_axis}),
        _L.Conv1D: PrunableWeights({"kernel": -2}),
        _L.Conv2D: PrunableWeights({"kernel": -2}),
        _L.Conv3D: PrunableWeights({"kernel": -2}),
        _L.DepthwiseConv2D: PrunableWeights({"kernel": 0}),
        _L.SeparableConv2D: PrunableWeights({"depthwise_kernel": 0, "pointwise_kernel": -2}),
        _L.Embedding: PrunableWeights({"embeddings": -1}, default=False),
    }
)


def lookup(layer_or_class):
    """Returns the `PrunableWeights` entry for a layer or class, or None.

    Example:

    >>> lookup(keras.layers.Dense(4)).input_axes
    {'kernel': 0}
    """
    return PRUNABLE.lookup(layer_or_class)


def input_axes(layer, entry):
    """Resolves an entry's input axes for a built `layer`: name -> int axis."""
    return {
        name: axis(layer) if callable(axis) else axis
        for name, axis in entry.input_axes.items()
    }


def supported_names():
    """Class names that can be pruned, for error messages."""
    return PRUNABLE.names()
