"""Keras 3 model -> ONNX (through tf2onnx), checked against onnxruntime.

`tf2onnx.convert.from_keras` only understands `tf_keras` models, so `to_onnx`
traces ``model(inputs, training=False)`` in a `tf.function` with a static
signature taken from ``model.inputs`` and converts that with
`tf2onnx.convert.from_function`; Keras variables are frozen into constants.

Quantization-aware models: every per-tensor
`tf.quantization.fake_quant_with_min_max_vars` (8 bits, ``narrow_range=False``,
``min <= 0 <= max``) becomes a QuantizeLinear -> DequantizeLinear pair. tf2onnx
writes them as uint8; `to_onnx` rewrites them to the equivalent int8 pairs
(zero point - 128, same numbers), the explicit-quantization form TensorRT reads.
With ``quantize_weights_per_channel=True`` the float weights of MatMul, Gemm and
Conv become int8 initializers -> DequantizeLinear (symmetric, per output channel).
"""

import collections
import contextlib
import dataclasses
import logging
import re

import keras
import numpy as np
import tensorflow as tf

from kcompress._errors import check_int, expected_error
from tflite_export._files import output_path, write_bytes_atomic

MIN_OPSET = 13  # First opset with per-channel DequantizeLinear; TensorRT's minimum for QDQ.
MAX_OPSET = 18  # Newest opset tf2onnx 1.17 knows.
_RANDOM_DIM = 8  # Stand-in for unknown non-batch dimensions (e.g. sequence length) in random check data.
_WEIGHT_SLOTS = {"MatMul": 1, "Gemm": 1, "Conv": 1}


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """What `to_onnx` wrote and how well onnxruntime agrees with Keras.

    Attributes:
        path: The `.onnx` file.
        size_bytes: Its size.
        opset: The ONNX opset (default domain).
        inputs: ``(name, shape, dtype)`` per graph input; `None` marks a dynamic dimension.
        outputs: ``(name, shape, dtype)`` per graph output.
        op_counts: Node count per ONNX op type, most frequent first.
        max_abs_diff: Largest ``|keras - onnxruntime|`` over all outputs on the check data.
        qdq_pairs: QuantizeLinear -> DequantizeLinear pairs (quantized activations);
            `weight_dequantizers` counts the int8 weight -> DequantizeLinear ones.
    """

    path: str
    size_bytes: int
    opset: int
    inputs: tuple
    outputs: tuple
    op_counts: dict
    max_abs_diff: float
    qdq_pairs: int

    @property
    def weight_dequantizers(self):
        """DequantizeLinear nodes fed by int8 initializers (per-channel weights)."""
        return self.op_counts.get("DequantizeLinear", 0) - self.qdq_pairs

    def __str__(self):
        def tensors(items):
            return ", ".join(
                f"{name} {dtype}[{', '.join('?' if d is None else str(d) for d in shape)}]"
                for name, shape, dtype in items
            )

        ops = ", ".join(f"{op} {count}" for op, count in self.op_counts.items())
        return "\n".join(
            [
                f"ONNX model {self.path} ({self.size_bytes:,} bytes, opset {self.opset})",
                f"  inputs:        {tensors(self.inputs)}",
                f"  outputs:       {tensors(self.outputs)}",
                f"  ops:           {ops}",
                f"  QDQ pairs:     {self.qdq_pairs} activations, {self.weight_dequantizers} weights",
                f"  max abs diff:  {self.max_abs_diff:.3g} (Keras vs onnxruntime)",
            ]
        )


def to_onnx(
    model,
    path,
    input_signature=None,
    opset=17,
    check_data=None,
    batch_size=1,
    quantize_weights_per_channel=False,
):
    """Exports a Keras 3 model to ONNX and checks it with onnxruntime.

    The graph is ``model(inputs, training=False)``. Its inputs are named after
    the model's inputs (dict keys for dict-input models such as keras-hub's
    ``{"token_ids", "segment_ids", "padding_mask"}``) and its outputs after
    ``model.output_names`` (``"output"`` when the model has none). The file is
    written atomically, then onnxruntime (CPU, basic graph optimizations only:
    the extended ones swap in approximate int8 kernels) runs it on `check_data`
    and the largest difference to Keras is reported.

    Fake-quant ops (`tf.quantization.fake_quant_with_min_max_vars`, 8 bits,
    ``narrow_range=False``, constant per-tensor ``min <= 0 <= max``) become int8
    QuantizeLinear -> DequantizeLinear pairs. They agree with TensorFlow to one
    quantization step ``(max - min) / 255``: values exactly half-way between two
    steps round up in TensorFlow and to even in ONNX. Ops tf2onnx cannot
    convert (other fake-quant flavours among them) raise before anything is
    written.

    Args:
        model: A built Keras 3 model (Sequential, functional, subclassed, keras-hub).
        path: Where to write, ending in ``.onnx``; its directory must exist.
        input_signature: A `tf.TensorSpec`, or a list / dict of them, matching
            what ``model(...)`` takes. Defaults to ``model.inputs`` with the batch
            dimension set to `batch_size`; a subclassed model without ``inputs``
            needs this or `check_data`.
        opset: ONNX opset, 13 to 18.
        check_data: Inputs for the parity check: an array, or a list / dict of
            arrays shaped like the model inputs with any number of rows. `None`
            draws random inputs: normal floats, integers in {0, 1}, ones for
            integer inputs whose name contains ``"mask"``, 8 for unknown sizes.
        batch_size: The static batch dimension of the graph, or `None` for a
            dynamic one. Check data is fed in chunks of this size.
        quantize_weights_per_channel: Also store the 2-D MatMul / Gemm weights and
            Conv kernels as int8 -> DequantizeLinear, symmetric (scale
            ``max|w| / 127``, zero point 0) per output channel. Lossless for
            weights already fake-quantized that way by quantization-aware
            training; otherwise rounds them.

    Returns:
        An `OnnxExport`.

    Example:

    >>> import os, tempfile, keras
    >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> result = to_onnx(model, os.path.join(tempfile.mkdtemp(), "model.onnx"))
    >>> result.inputs, result.outputs
    ((('x', (1, 4), 'float32'),), (('output', (1, 2), 'float32'),))
    >>> result.max_abs_diff < 1e-5
    True
    """
    path = output_path(path, suffix=".onnx")
    opset = check_int("opset", opset, minimum=MIN_OPSET)
    if opset > MAX_OPSET:
        raise expected_error(f"opset <= {MAX_OPSET} (the newest tf2onnx supports)", opset=opset)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    signature = _signature(model, input_signature, check_data, batch_size)
    specs = tf.nest.flatten(signature)
    if check_data is None:
        arrays = _random_inputs(specs)
    else:
        arrays = _check_arrays(signature, check_data)

    model_proto, output_names = _convert(model, signature, opset)
    _int8_activations(model_proto.graph)
    if quantize_weights_per_channel:
        _quantize_weights(model_proto.graph)
    import onnx

    onnx.checker.check_model(model_proto)
    data = model_proto.SerializeToString()
    size = write_bytes_atomic(path, data)

    max_abs_diff = _parity(model, data, signature, arrays, output_names)
    ops = collections.Counter(node.op_type for node in model_proto.graph.node)
    return OnnxExport(
        path=str(path),
        size_bytes=size,
        opset=opset,
        inputs=tuple(_tensor_info(v) for v in model_proto.graph.input),
        outputs=tuple(_tensor_info(v) for v in model_proto.graph.output),
        op_counts=dict(sorted(ops.items(), key=lambda item: (-item[1], item[0]))),
        max_abs_diff=max_abs_diff,
        qdq_pairs=_count_qdq_pairs(model_proto.graph),
    )


# Signature -------------------------------------------------------------------


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


def _signature(model, input_signature, check_data, batch_size):
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


# Check data ------------------------------------------------------------------


def _random_inputs(specs):
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


def _check_arrays(signature, check_data):
    """`check_data` as a flat list of arrays in signature order; raises on mismatches."""
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


# Conversion ------------------------------------------------------------------


def _output_names(model, outputs):
    flat = tf.nest.flatten(outputs)
    if isinstance(outputs, dict):
        names = [str(key) for key in sorted(outputs)]
    else:
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(flat):
            names = ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
    return _unique_names([_clean_name(name, f"output_{i}") for i, name in enumerate(names)])


def _convert(model, signature, opset):
    """Returns the ONNX `ModelProto` and the output names in Keras' flat order."""
    import onnx
    import tf2onnx

    output_names = []

    @tf.function
    def serve(inputs):
        outputs = model(inputs, training=False)
        output_names[:] = _output_names(model, outputs)
        return dict(zip(output_names, tf.nest.flatten(outputs)))

    with _tf2onnx_errors() as reasons:
        model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=[signature], opset=opset)
    left = sorted(
        {
            node.op_type
            for node in model_proto.graph.node
            if node.domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type)
        }
    )
    if left:
        hint = ""
        if any(op.startswith("FakeQuant") for op in left):
            hint = (
                " (tf2onnx converts only per-tensor FakeQuantWithMinMaxVars/Args with num_bits=8, "
                "narrow_range=False, constant min <= 0 <= max)"
            )
        raise expected_error(
            f"a model made of ops tf2onnx can convert{hint}", unconverted_ops=left, tf2onnx_errors=reasons
        )
    return model_proto, list(output_names)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.reasons = []

    def emit(self, record):
        error = record.exc_info[1] if record.exc_info else None
        reason = str(error) if error is not None else record.getMessage().splitlines()[0]
        if reason not in self.reasons:
            self.reasons.append(reason)


@contextlib.contextmanager
def _tf2onnx_errors():
    """Collects tf2onnx's per-node conversion errors instead of printing their tracebacks."""
    logger = logging.getLogger("tf2onnx")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.reasons
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# Graph rewrites --------------------------------------------------------------


def _consumers(graph):
    uses = collections.defaultdict(list)
    for node in graph.node:
        for slot, name in enumerate(node.input):
            uses[name].append((node, slot))
    return uses


def _int8_activations(graph):
    """Rewrites tf2onnx's uint8 Q/DQ zero points to int8 (zero point - 128): same numbers, TensorRT's form."""
    from onnx import TensorProto, numpy_helper

    producers = {out: node for node in graph.node for out in node.output}
    uses = _consumers(graph)
    for index, init in enumerate(graph.initializer):
        if init.data_type != TensorProto.UINT8 or not uses.get(init.name):
            continue
        convertible = all(
            node.op_type in ("QuantizeLinear", "DequantizeLinear")
            and slot == 2
            and (node.op_type == "QuantizeLinear" or _fed_by_quantize(node, producers))
            for node, slot in uses[init.name]
        )
        if convertible:
            value = numpy_helper.to_array(init).astype(np.int16) - 128
            graph.initializer[index].CopyFrom(numpy_helper.from_array(value.astype(np.int8), init.name))


def _quantize_weights(graph):
    """Float weight initializers of MatMul/Gemm/Conv -> int8 initializer -> DequantizeLinear (per channel)."""
    from onnx import helper, numpy_helper

    inits = {init.name: init for init in graph.initializer}
    dequantized = {}
    new_nodes = []
    for node in graph.node:
        slot = _WEIGHT_SLOTS.get(node.op_type)
        if slot is None or len(node.input) <= slot or node.input[slot] not in inits:
            continue
        name = node.input[slot]
        weight = numpy_helper.to_array(inits[name])
        if weight.dtype != np.float32:
            continue
        if node.op_type == "Conv":
            axis = 0
        elif weight.ndim != 2:
            continue
        elif node.op_type == "Gemm":
            axis = 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
        else:
            axis = 1
        key = (name, axis)
        if key not in dequantized:
            reduce = tuple(d for d in range(weight.ndim) if d != axis)
            scale = np.max(np.abs(weight), axis=reduce) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            shape = [1] * weight.ndim
            shape[axis] = -1
            q = np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
            base = f"{name}_per_channel"
            graph.initializer.extend(
                [
                    numpy_helper.from_array(q, f"{base}_int8"),
                    numpy_helper.from_array(scale, f"{base}_scale"),
                    numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}_zero_point"),
                ]
            )
            out = f"{base}_dequantized"
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{base}_int8", f"{base}_scale", f"{base}_zero_point"],
                    [out],
                    name=f"{base}_DequantizeLinear",
                    axis=axis,
                )
            )
            dequantized[key] = out
        node.input[slot] = dequantized[key]

    # Dequantizers read only initializers, so they go first in topological order.
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _fed_by_quantize(node, producers):
    producer = producers.get(node.input[0])
    return producer is not None and producer.op_type == "QuantizeLinear"


def _count_qdq_pairs(graph):
    producers = {out: node for node in graph.node for out in node.output}
    return sum(1 for node in graph.node if node.op_type == "DequantizeLinear" and _fed_by_quantize(node, producers))


def _tensor_info(value_info):
    from onnx import helper

    tensor_type = value_info.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    return value_info.name, shape, dtype


# Parity ----------------------------------------------------------------------


def _parity(model, data, signature, arrays, output_names):
    """Largest |Keras - onnxruntime| over all outputs, feeding `arrays` in graph-sized chunks."""
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
