"""Where an exported graph's input signature comes from, for `convert`, `verify` and `to_onnx`.

In this order:

1. an explicit ``input_signature``: a `tf.TensorSpec` or `keras.InputSpec`,
   or a list / dict of them, as ``model.export(input_signature=...)`` takes
   (one structure, not wrapped in a list of positional arguments);
2. the model's own inputs (functional, Sequential, keras-hub);
3. one batch of the data the caller was given (``representative_data``,
   ``check_data``): its shapes and dtypes, a dict of arrays giving a dict of
   specs, a list of arrays a list (one per input), an array one spec.

A subclassed model has no inputs, so it needs 1 or 3; without either,
`missing_error` says so.
"""

import re

import keras
import numpy as np
import tensorflow as tf

from kcompress._errors import expected_error


def model_inputs(model):
    """The model's input structure of KerasTensors (dicts stay dicts), or `None` if it has none.

    Example:

    >>> model_inputs(keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])).name
    'x'
    >>> model_inputs(keras.layers.Dense(2)) is None
    True
    """
    try:
        structure = model.input  # Keeps dicts as dicts; fails for never-called Sequential and subclassed models.
    except (AttributeError, ValueError):
        try:
            structure = model.inputs
        except (AttributeError, ValueError):
            structure = None
        if structure is not None and len(structure) == 1:
            structure = structure[0]
    if structure is None or (isinstance(structure, (list, tuple, dict)) and not structure):
        return None
    return list(structure) if isinstance(structure, tuple) else structure


def checked(input_signature):
    """`input_signature` as a structure of `tf.TensorSpec`s (a spec, or a list / dict of them).

    Raises:
        ValueError: It is not a `tf.TensorSpec` / `keras.InputSpec` or a
            non-empty list / tuple / dict of them, or a spec has no shape or dtype.

    Example:

    >>> checked([tf.TensorSpec((None, 4), name="a"), keras.InputSpec(shape=(None, 2), dtype="int32")])[1]
    TensorSpec(shape=(None, 2), dtype=tf.int32, name=None)
    >>> checked((4,))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Expected input_signature to be a tf.TensorSpec or keras.InputSpec ... Received: input_signature=(4,)
    """
    structure = list(input_signature) if isinstance(input_signature, tuple) else input_signature
    if isinstance(structure, list) and len(structure) == 1:
        structure = structure[0]  # [spec]: one input, as keras' export writes it.
    flat = tf.nest.flatten(structure) if isinstance(structure, (list, dict)) else [structure]
    valid = bool(flat) and all(
        isinstance(s, tf.TensorSpec) or (isinstance(s, keras.InputSpec) and s.shape is not None) for s in flat
    )
    if isinstance(structure, (list, dict)) and any(isinstance(v, (list, dict)) for v in _values(structure)):
        valid = False  # Nested structures: one level only.
    if not valid:
        raise expected_error(
            "input_signature to be a tf.TensorSpec or keras.InputSpec (with a shape), or a list / dict of them",
            input_signature=input_signature,
        )

    def spec(s):
        if isinstance(s, tf.TensorSpec):
            return s
        dtype = keras.backend.standardize_dtype(s.dtype or keras.backend.floatx())
        return tf.TensorSpec(s.shape, tf.as_dtype(dtype), name=getattr(s, "name", None))

    return tf.nest.map_structure(spec, structure) if isinstance(structure, (list, dict)) else spec(structure)


def from_data(example, batch_size):
    """`tf.TensorSpec`s with the shapes and dtypes of one batch of inputs; the batch axis set to `batch_size`.

    A dict of arrays gives a dict of specs, a list (or tuple) of arrays a list
    of specs (one per input), an array one spec. NumPy's default float64
    becomes ``keras.backend.floatx()``.

    Example:

    >>> from_data({"ids": np.zeros((8, 5), "int32")}, batch_size=1)
    {'ids': TensorSpec(shape=(1, 5), dtype=tf.int32, name='ids')}
    >>> [s.name for s in from_data([np.zeros((8, 3)), np.zeros((8, 2))], batch_size=None)]
    ['input_0', 'input_1']
    """

    def spec(array, name):
        array = np.asarray(array)
        if array.ndim == 0:
            raise expected_error("input data with a batch axis", **{name: array})
        dtype = keras.backend.floatx() if array.dtype == np.float64 else array.dtype
        return tf.TensorSpec((batch_size, *array.shape[1:]), tf.as_dtype(dtype), name=name)

    if isinstance(example, dict):
        return {str(key): spec(value, str(key)) for key, value in example.items()}
    if isinstance(example, (list, tuple)):
        if len(example) == 1:
            return spec(example[0], "input")
        return [spec(value, f"input_{i}") for i, value in enumerate(example)]
    return spec(example, "input")


def is_array(value):
    """Whether `value` is one array of inputs (NumPy, TensorFlow or Keras), not a structure of them."""
    return isinstance(value, np.ndarray) or tf.is_tensor(value) or keras.ops.is_tensor(value)


def input_names(model, count):
    """The names `convert` gives a list of `count` inputs: the model's input names, else ``input_<i>``."""
    structure = model_inputs(model)
    if isinstance(structure, list) and len(structure) == count:
        return [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(structure)]
    return [f"input_{i}" for i in range(count)]


def several_inputs(model, input_signature):
    """Whether a list of arrays given as data holds one array per input.

    True for a model (or `input_signature`) with a list of several inputs;
    `None` when neither is known (a subclassed model), where a list of
    arrays is read as one array per input too.
    """
    structure = checked(input_signature) if input_signature is not None else model_inputs(model)
    if structure is None:
        return None
    return isinstance(structure, list) and len(structure) > 1


def missing_error(model, data_arg):
    """The error for a model with no inputs and neither data nor `input_signature` to read them from.

    Example:

    >>> str(missing_error(keras.layers.Dense(2, name="net"), "representative_data"))
    "Expected a model with known inputs, representative_data or input_signature. Received: model='net'"
    """
    return expected_error(f"a model with known inputs, {data_arg} or input_signature", model=model.name)


def tensor_name(tensor, index, count):
    """A Keras input's name, or ``input`` / ``input_<i>`` for Keras' automatic ``keras_tensor_<n>``."""
    name = getattr(tensor, "name", None) or ""
    if re.fullmatch(r"keras_tensor(_\d+)?", name):
        return "input" if count == 1 else f"input_{index}"
    return name


def _values(structure):
    return structure.values() if isinstance(structure, dict) else structure
