"""Output ranges TFLite's int8 kernels fix, whatever the data: a learnt range there would not hold.

The int8 SOFTMAX and LOGISTIC write on a 1/256 grid from 0, TANH on a
1/128 grid around 0. A fake-quantized model must
round those outputs on the same grids: with a learnt range the converter
keeps the kernel's grid anyway and adds a requantizing op after it, and the
int8 model rounds twice where the QAT model rounded once.
"""

import keras

SOFTMAX = (0.0, 255.0 / 256.0)
LOGISTIC = SOFTMAX
TANH = (-1.0, 127.0 / 128.0)

# Activation function -> the range its int8 kernel writes on.
_ACTIVATIONS = {
    keras.activations.tanh: TANH,
    keras.activations.sigmoid: LOGISTIC,
}


def for_activation(activation):
    """The fixed output range of an activation function's int8 kernel, or None if it learns one.

    Example:

    >>> for_activation(keras.activations.tanh)
    (-1.0, 0.9921875)
    >>> for_activation(keras.activations.gelu) is None
    True
    """
    return _ACTIVATIONS.get(activation)
