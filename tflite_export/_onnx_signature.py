"""The ONNX graph's signature: static input specs and safe, unique tensor names.

Internal to `to_onnx`. The inputs are named after the model's inputs (dict keys
for dict-input models, ``"input"`` / ``"input_<i>"`` when Keras named them
automatically) and the outputs after ``model.output_names``; every name is made
TF- and ONNX-safe and unique. A dynamic batch dimension is named ``"batch"``.
"""

import re

import tensorflow as tf

from tflite_export import _signature as _signatures


def signature(model, input_signature, check_data, batch_size):
    """Returns the named `tf.TensorSpec` structure the graph is traced with.

    Taken from `input_signature` if given (as `tflite_export._signature.checked`
    takes it), else from ``model.inputs`` (batch dimension set to
    `batch_size`), else from the shapes and dtypes of `check_data` (float64
    arrays become ``keras.backend.floatx()``); see `tflite_export._signature`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> signature(model, None, None, batch_size=1)
    TensorSpec(shape=(1, 4), dtype=tf.float32, name='x')
    >>> spec = tf.TensorSpec((1, 8), tf.int32)
    >>> signature(None, {"token_ids": spec, "padding mask": spec}, None, batch_size=1)["padding mask"].name
    'padding_mask'
    """
    if input_signature is not None:
        input_signature = _signatures.checked(input_signature)
        hints = _structure_hints(input_signature, lambda i, spec: spec.name or f"input_{i}")
        return _name_specs(input_signature, hints)

    structure = _signatures.model_inputs(model)
    if structure is not None:
        count = len(tf.nest.flatten(structure))

        def spec(tensor):
            return tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype)

        def hint(i, tensor):
            return _signatures.tensor_name(tensor, i, count)

        return _name_specs(tf.nest.map_structure(spec, structure), _structure_hints(structure, hint))

    if check_data is not None:
        structure = _signatures.from_data(check_data, batch_size)
        return _name_specs(structure, _structure_hints(structure, lambda i, _: f"input_{i}"))

    raise _signatures.missing_error(model, "check_data")


def name_batch_axis(graph, name="batch"):
    """Names the dynamic first dimension of every graph input and output `name` (one symbol for all).

    tf2onnx names each unknown dimension on its own (``unk__12``); one name
    says the inputs and outputs share the batch, as TensorRT's optimization
    profiles and onnxruntime read it.

    Example:

    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["unk__3", 4])], [])
    >>> name_batch_axis(graph)
    >>> graph.input[0].type.tensor_type.shape.dim[0].dim_param
    'batch'
    """
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_param = name


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
