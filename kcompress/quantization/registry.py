"""The one table of what can be quantized: layer class -> wrapper."""

import keras

from kcompress.quantization import layer_norm
from kcompress.quantization.attention import QuantizeAttention
from kcompress.quantization.embedding import QuantizeEmbedding
from kcompress.quantization.kernel import QuantizeKernel, QuantizeSeparableConv
from kcompress.quantization.layer_norm import QuantizeLayerNorm
from kcompress.quantization.output import QuantizeOutput

_L = keras.layers
# Dispatch is by class and base classes (keras-hub's CachedMultiHeadAttention
# is a MultiHeadAttention, its ReversibleEmbedding an Embedding). An entry's
# optional predicate says which configurations of the class are supported.
QUANTIZABLE = {
    _L.Dense: (QuantizeKernel, None),
    _L.EinsumDense: (QuantizeKernel, None),
    _L.Conv1D: (QuantizeKernel, None),
    _L.Conv2D: (QuantizeKernel, None),
    _L.DepthwiseConv2D: (QuantizeKernel, None),
    _L.SeparableConv2D: (QuantizeSeparableConv, None),
    _L.Embedding: (QuantizeEmbedding, None),
    _L.MultiHeadAttention: (QuantizeAttention, None),
    _L.LayerNormalization: (QuantizeLayerNorm, layer_norm.supports),
    _L.Add: (QuantizeOutput, None),
    _L.Subtract: (QuantizeOutput, None),
    _L.Multiply: (QuantizeOutput, None),
    _L.Average: (QuantizeOutput, None),
    _L.Concatenate: (QuantizeOutput, None),
    _L.Activation: (QuantizeOutput, None),
    _L.ReLU: (QuantizeOutput, None),
    _L.Softmax: (QuantizeOutput, None),
    _L.GlobalAveragePooling1D: (QuantizeOutput, None),
    _L.GlobalAveragePooling2D: (QuantizeOutput, None),
    _L.AveragePooling1D: (QuantizeOutput, None),
    _L.AveragePooling2D: (QuantizeOutput, None),
}

# Layers of optional packages, by class name: name -> (wrapper, extra arguments).
QUANTIZABLE_BY_NAME = {
    "PositionEmbedding": (QuantizeOutput, {"constant": True}),  # keras-hub
}


# Keras operations and layers (by class name) that only select or move values: the int8
# graph runs them on their input's scale, so their output is as quantized as their input.
VIEWS = ("GetItem", "Slice", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Flatten", "Permute")


def is_view(operation):
    """Whether `operation` (a Keras layer or op of a functional graph) is in `VIEWS`.

    Example:

    >>> is_view(keras.layers.Reshape((4,))), is_view(keras.layers.Dense(2))
    (True, False)
    """
    cls = type(operation)
    return cls.__name__ in VIEWS and cls.__module__.startswith("keras.")


def lookup(layer):
    """The wrapper for `layer` as ``(class, extra arguments)``, or None to stay float.

    Example:

    >>> lookup(keras.layers.Dense(2))[0].__name__
    'QuantizeKernel'
    >>> lookup(keras.layers.Dropout(0.1)) is None
    True
    """
    for base in type(layer).__mro__:
        if base in QUANTIZABLE:
            wrapper, supported = QUANTIZABLE[base]
            if supported is None or supported(layer):
                return wrapper, {}
            return None
        if base.__name__ in QUANTIZABLE_BY_NAME and base.__module__.startswith("keras_hub"):
            return QUANTIZABLE_BY_NAME[base.__name__]
    return None


def supported_names():
    """Class names that can be quantized, for error messages."""
    return ", ".join(cls.__name__ for cls in QUANTIZABLE)
