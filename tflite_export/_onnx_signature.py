"""The ONNX graph's signature: static input specs and safe, unique tensor names.

Internal to `to_onnx`. The inputs are named after the model's inputs (dict keys
for dict-input models, ``"input"`` / ``"input_<i>"`` when Keras named them
automatically) and the outputs after ``model.output_names``; every name is made
TF- and ONNX-safe and unique.
"""

import re

import keras
import numpy as np
import tensorflow as tf

from kcompress._errors import expected_error


def signature(model, input_signature, check_data, batch_size):
    """Returns the named `tf.TensorSpec` structure the graph is traced with.

    Taken from `input_signature` if given, else from ``model.inputs`` (batch
    dimension set to `batch_size`), else from the shapes and dtypes of
    `check_data` (float64 arrays become ``keras.backend.floatx()``).

    Example:

    >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> signature(model, None, None, batch_size=1)
    TensorSpec(shape=(1, 4), dtype=tf.float32, name='x')
    >>> spec = tf.TensorSpec((1, 8), tf.int32)
    >>> signature(None, {"token_ids": spec, "padding mask": spec}, None, batch_size=1)["padding mask"].name
    'padding_mask'
    """
    if input_signature is not None:
        if isinstance(input_signature, (list, tuple, dict)):
            flat = tf.nest.flatten(input_signature)
        else:
            flat = [input_signature]
        if not flat or not all(isinstance(spec, tf.TensorSpec) for spec in flat):
            raise expected_error(
                "input_signature to be a tf.TensorSpec or a list / dict of them", input_signature=input_signature
            )
        hints = _structure_hints(input_signature, lambda i, spec: spec.name or f"input_{i}")
        return _name_specs(input_signature, hints)

    structure = _model_inputs(model)
    if structure is not None:

        def spec(tensor):
            return tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype)

        def hint(i, tensor):
            name = getattr(tensor, "name", None) or ""
            if re.fullmatch(r"keras_tensor(_\d+)?", name):  # Keras' automatic name says nothing.
                return "input" if len(tf.nest.flatten(structure)) == 1 else f"input_{i}"
            return name

        return _name_specs(tf.nest.map_structure(spec, structure), _structure_hints(structure, hint))

    if check_data is not None:

        def spec(array):
            array = np.asarray(array)
            dtype = keras.backend.floatx() if array.dtype == np.float64 else array.dtype  # NumPy's default float.
            return tf.TensorSpec((batch_size, *array.shape[1:]), dtype)

        if isinstance(check_data, tuple):
            check_data = list(check_data)
        structure = tf.nest.map_structure(spec, check_data)
        return _name_specs(structure, _structure_hints(structure, lambda i, _: f"input_{i}"))

    raise expected_error(
        "input_signature or check_data for a model without `inputs` (e.g. a subclassed model)",
        input_signature=None,
        check_data=None,
    )


def output_names(model, outputs):
    """Unique, safe names for the model's outputs, in `tf.nest.flatten` order.

    Dict outputs are named by their keys; otherwise by ``model.output_names``
    when it has one name per output, else ``"output"`` / ``"output_<i>"``.

    Example:

    >>> output_names(None, {"probs": 0, "logits/raw": 1})
    ['logits_raw', 'probs']
    >>> output_names(None, [0, 1])
    ['output_0', 'output_1']
    """
    flat = tf.nest.flatten(outputs)
    if isinstance(outputs, dict):
        names = [str(key) for key in sorted(outputs)]
    else:
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(flat):
            names = ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
    return _unique_names([_clean_name(name, f"output_{i}") for i, name in enumerate(names)])


def _clean_name(name, fallback):
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name or ""))
    return name if name and name[0].isalnum() else fallback


def _unique_names(names):
    seen, result = set(), []
    for name in names:
        candidate, i = name, 0
        while candidate in seen:
            i += 1
            candidate = f"{name}_{i}"
        seen.add(candidate)
        result.append(candidate)
    return result


def _name_specs(structure, names_hint):
    """Gives every spec in `structure` a unique, TF-safe name."""
    flat = tf.nest.flatten(structure)
    names = _unique_names([_clean_name(hint, f"input_{i}") for i, hint in enumerate(names_hint)])
    named = [tf.TensorSpec(spec.shape, spec.dtype, name=name) for spec, name in zip(flat, names)]
    return tf.nest.pack_sequence_as(structure, named)


def _structure_hints(structure, default):
    """Flat name hints: dict keys where there are keys, else `default(i, item)`."""
    if isinstance(structure, dict):
        return [str(key) for key in sorted(structure)]  # tf.nest flattens dicts by sorted key.
    return [default(i, item) for i, item in enumerate(tf.nest.flatten(structure))]


def _model_inputs(model):
    """The model's input structure of KerasTensors, or `None` for subclassed models."""
    try:
        structure = model.input  # Keeps dicts as dicts; fails for never-called Sequential.
    except (AttributeError, ValueError):
        structure = getattr(model, "inputs", None)
        if structure is not None and len(structure) == 1:
            structure = structure[0]
    return structure
