"""`as_model_inputs`: one array in the structure a functional model was built with."""


def as_model_inputs(model, x):
    """Returns `x`, or ``[x]`` when `model` was built on a list of one input and `x` is a single array.

    A `keras.applications` model built with ``input_tensor=`` has its inputs
    as a list of one; Keras warns when it gets a bare array instead.

    Example:

    >>> import keras, numpy as np
    >>> inputs = keras.Input((2,))
    >>> listed = keras.Model([inputs], keras.layers.Dense(1)(inputs))
    >>> type(as_model_inputs(listed, np.ones((1, 2)))).__name__
    'list'
    >>> type(as_model_inputs(keras.Model(inputs, inputs), np.ones((1, 2)))).__name__
    'ndarray'
    """
    structure = getattr(model, "_inputs_struct", None)
    if isinstance(structure, list) and len(structure) == 1 and not isinstance(x, (list, tuple, dict)):
        return [x]
    return x
