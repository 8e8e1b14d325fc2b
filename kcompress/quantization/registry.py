"""The one table of what can be quantized: layer class -> wrapper."""

import dataclasses

import keras

from kcompress._layer_table import LayerTable
from kcompress.quantization import affine, layer_norm
from kcompress.quantization.affine import QuantizeAffine
from kcompress.quantization.attention import QuantizeAttention
from kcompress.quantization.embedding import QuantizeEmbedding
from kcompress.quantization.folding import FoldedLayer
from kcompress.quantization.kernel import QuantizeKernel, QuantizeSeparableConv
from kcompress.quantization.layer_norm import QuantizeLayerNorm
from kcompress.quantization.operation import QuantizeOperation
from kcompress.quantization.output import QuantizeOutput


@dataclasses.dataclass(frozen=True)
class Quantizable:
    """How to quantize one layer family.

    Attributes:
        wrapper: The wrapper class.
        extra: Extra arguments of the wrapper.
        supports: Optional callable ``layer -> bool``: which configurations
            of the family are supported (the others stay float).
    """

    wrapper: type
    extra: dict = dataclasses.field(default_factory=dict)
    supports: object = None


_L = keras.layers
# Dispatch is by class and base classes (keras-hub's CachedMultiHeadAttention
# is a MultiHeadAttention, its ReversibleEmbedding an Embedding); layers of
# optional packages are named.
QUANTIZABLE = LayerTable(
    {
        _L.Dense: Quantizable(QuantizeKernel),
        _L.EinsumDense: Quantizable(QuantizeKernel),
        _L.Conv1D: Quantizable(QuantizeKernel),
        _L.Conv2D: Quantizable(QuantizeKernel),
        _L.DepthwiseConv2D: Quantizable(QuantizeKernel),
        _L.SeparableConv2D: Quantizable(QuantizeSeparableConv),
        _L.Embedding: Quantizable(QuantizeEmbedding),
        _L.MultiHeadAttention: Quantizable(QuantizeAttention),
        _L.LayerNormalization: Quantizable(QuantizeLayerNorm, supports=layer_norm.supports),
        _L.Rescaling: Quantizable(QuantizeAffine, supports=affine.supports),
        _L.Normalization: Quantizable(QuantizeAffine, supports=affine.supports),
        _L.BatchNormalization: Quantizable(QuantizeAffine, supports=affine.supports),
        _L.Add: Quantizable(QuantizeOutput),
        _L.Subtract: Quantizable(QuantizeOutput),
        _L.Multiply: Quantizable(QuantizeOutput),
        _L.Average: Quantizable(QuantizeOutput),
        _L.Concatenate: Quantizable(QuantizeOutput),
        _L.Activation: Quantizable(QuantizeOutput),
        _L.ReLU: Quantizable(QuantizeOutput),
        _L.Softmax: Quantizable(QuantizeOutput),
        _L.GlobalAveragePooling1D: Quantizable(QuantizeOutput),
        _L.GlobalAveragePooling2D: Quantizable(QuantizeOutput),
        _L.AveragePooling1D: Quantizable(QuantizeOutput),
        _L.AveragePooling2D: Quantizable(QuantizeOutput),
    },
    by_name={"keras_hub.PositionEmbedding": Quantizable(QuantizeOutput, {"constant": True})},
)


# Stateless Keras operations of a functional graph (``x + 3.0``) whose output gets a range.
OPERATIONS = LayerTable(
    {},
    by_name={
        f"keras.src.ops.numpy.{name}": QuantizeOperation
        for name in ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Mean")
    }
    | {
        f"keras.src.ops.nn.{name}": QuantizeOperation
        for name in ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu")
    },
)

# Keras operations and layers (by class name) that only select or move values: the int8
# graph runs them on their input's scale, so their output is as quantized as their input.
# Padding adds zeros (on every grid), max pooling and dropout (in inference) pass values through.
VIEWS = (
    "GetItem", "Slice", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Flatten", "Permute",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "MaxPooling1D", "MaxPooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Dropout", "SpatialDropout2D",
)  # fmt: skip


def is_view(operation):
    """Whether `operation` (a Keras layer or op of a functional graph) is in `VIEWS`.

    Example:

    >>> is_view(keras.layers.Reshape((4,))), is_view(keras.layers.Dense(2))
    (True, False)
    """
    if isinstance(operation, FoldedLayer):  # Where a folded BatchNormalization or fused ReLU was.
        return True
    cls = type(operation)
    return cls.__name__ in VIEWS and cls.__module__.startswith("keras.")


def lookup(layer):
    """The wrapper for `layer` (or a functional graph's op) as ``(class, extra arguments)``, or None to stay float.

    Example:

    >>> lookup(keras.layers.Dense(2))[0].__name__
    'QuantizeKernel'
    >>> lookup(keras.layers.Dropout(0.1)) is None
    True
    """
    if not isinstance(layer, keras.layers.Layer):
        wrapper = OPERATIONS.lookup(type(layer))
        return None if wrapper is None else (wrapper, {})
    entry = QUANTIZABLE.lookup(type(layer))
    if entry is None or (entry.supports is not None and not entry.supports(layer)):
        return None
    return entry.wrapper, dict(entry.extra)


def supported_names():
    """Class names that can be quantized, for error messages."""
    return QUANTIZABLE.names()
