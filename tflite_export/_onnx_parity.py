"""The onnxruntime parity check of `to_onnx`: its data, and Keras vs onnxruntime.

Internal to `to_onnx`. The check data is the user's `check_data` validated
against the graph signature (`check_arrays`), or random inputs shaped like it
(`random_inputs`). `max_abs_diff` runs both through Keras and onnxruntime (CPU,
basic graph optimizations only) and returns the largest difference.
"""

import keras
import numpy as np
import tensorflow as tf

from kcompress._errors import expected_error

_RANDOM_DIM = 8  # Stand-in for unknown non-batch dimensions (e.g. sequence length) in random check data.


def random_inputs(specs):
    """One random array per spec: normal floats, integers in {0, 1}, ones for masks and booleans.

    Unknown non-batch dimensions become 8 and an unknown batch dimension 1.
    The generator is seeded, so the data is the same on every call.

    Example:

    >>> specs = [tf.TensorSpec((None, None), tf.int32, name="padding_mask"), tf.TensorSpec((1, 3), tf.float32)]
    >>> mask, x = random_inputs(specs)
    >>> mask.shape, mask.min(), x.shape, x.dtype
    ((1, 8), np.int32(1), (1, 3), dtype('float32'))
    """
    rng = np.random.default_rng(0)
    arrays = []
    for spec in specs:
        shape = tuple(_RANDOM_DIM if d is None else d for d in spec.shape.as_list())
        if spec.shape.rank and spec.shape[0] is None:
            shape = (1, *shape[1:])
        dtype = spec.dtype.as_numpy_dtype
        if spec.dtype.is_bool:
            arrays.append(np.ones(shape, dtype))
        elif spec.dtype.is_integer:
            if "mask" in spec.name.lower():
                arrays.append(np.ones(shape, dtype))
            else:
                arrays.append(rng.integers(0, 2, shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def check_arrays(signature, check_data):
    """`check_data` as a flat list of arrays in signature order; raises on mismatches.

    Example:

    >>> check_arrays(tf.TensorSpec((1, 4), tf.float32, name="x"), np.zeros((2, 3)))
    Traceback (most recent call last):
    ...
    ValueError: Expected check_data of shape (n, 4) for input 'x'. Received: check_data.shape=(2, 3)
    """
    if isinstance(signature, dict):
        if not isinstance(check_data, dict) or set(check_data) != set(signature):
            shown = sorted(check_data) if isinstance(check_data, dict) else type(check_data).__name__
            raise expected_error(f"check_data to be a dict with keys {sorted(signature)}", check_data=shown)
        flat_data = [check_data[key] for key in sorted(signature)]
    elif isinstance(signature, (list, tuple)):
        if not isinstance(check_data, (list, tuple)) or len(check_data) != len(signature):
            raise expected_error(f"check_data to be a list of {len(signature)} arrays", check_data=type(check_data))
        flat_data = list(check_data)
    else:
        flat_data = [check_data]

    arrays, rows = [], set()
    for spec, data in zip(tf.nest.flatten(signature), flat_data):
        array = np.asarray(data)
        expected = spec.shape.as_list()
        shape_ok = array.ndim == len(expected) and all(
            e is None or e == a for e, a in zip(expected[1:], array.shape[1:])
        )
        if not shape_ok or array.shape[0] < 1:
            want = ", ".join(["n"] + ["?" if d is None else str(d) for d in expected[1:]])
            raise expected_error(
                f"check_data of shape ({want}) for input '{spec.name}'", **{"check_data.shape": array.shape}
            )
        target = spec.dtype.as_numpy_dtype
        if not np.can_cast(array.dtype, target, "same_kind"):
            raise expected_error(
                f"check_data of a dtype castable to {np.dtype(target).name} for input '{spec.name}'",
                **{"check_data.dtype": array.dtype.name},
            )
        arrays.append(array.astype(target, copy=False))
        rows.add(array.shape[0])
    if len(rows) > 1:
        raise expected_error("the same number of rows in every check_data array", rows=sorted(rows))
    return arrays


def max_abs_diff(model, data, signature, arrays, output_names):
    """Largest |Keras - onnxruntime| over all outputs, feeding `arrays` in graph-sized chunks.

    `data` is the serialized ONNX model, whose inputs are named after the
    specs of `signature` and whose outputs are `output_names` (in Keras'
    flat output order). With a static batch dimension the last chunk is
    padded by repeating its last row; padded rows are not compared. NaN if
    any output had a NaN.

    Example:

    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Identity", ["x"], ["y"])],
    ...     "identity",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    ... )
    >>> data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    >>> relu = keras.Sequential([keras.Input((2,)), keras.layers.ReLU()])
    >>> spec = tf.TensorSpec((1, 2), tf.float32, name="x")
    >>> max_abs_diff(relu, data, spec, [np.array([[1.0, 2.0], [-3.0, 4.0]], np.float32)], ["y"])
    3.0
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Basic rewrites keep ONNX semantics; the extended ones are runtime choices that change numbers
    # (e.g. int8 weight -> DequantizeLinear -> MatMul becomes MatMulNBits on int8-quantized activations).
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    specs = tf.nest.flatten(signature)
    rows = arrays[0].shape[0]
    batch = specs[0].shape[0] if specs[0].shape.rank else None
    step = batch or rows
    diffs = [0.0]
    for start in range(0, rows, step):
        chunk = [array[start : start + step] for array in arrays]
        n = chunk[0].shape[0]
        if batch and n < batch:  # Pad the last chunk to the static batch by repeating its last row.
            chunk = [np.concatenate([c, np.repeat(c[-1:], batch - n, axis=0)]) for c in chunk]
        feed = {spec.name: array for spec, array in zip(specs, chunk)}
        got = session.run(output_names, feed)
        expected = model(tf.nest.pack_sequence_as(signature, chunk), training=False)
        for want, have in zip(tf.nest.flatten(expected), got):
            want = keras.ops.convert_to_numpy(want)[:n].astype(np.float64)
            diff = np.abs(want - np.asarray(have)[:n].astype(np.float64))
            diffs.append(float(np.max(diff)) if diff.size else 0.0)
    return float(np.max(diffs))  # NaN if any output had a NaN.
