"""QuantizeLinear / DequantizeLinear rewrites of a tf2onnx graph, in place.

Internal to `to_onnx`. tf2onnx turns every per-tensor 8-bit fake-quant op of a
quantization-aware model into a uint8 QuantizeLinear -> DequantizeLinear pair;
`int8_activations` rewrites the pairs to the equivalent int8 ones (zero point
- 128, same numbers), the explicit-quantization form TensorRT reads.
`quantize_weights` stores the float weights of MatMul, Gemm and
Conv as int8 initializers -> DequantizeLinear (symmetric, zero point 0): on
the grid their quantization wrapper rounded them to, else rounded per output
channel.
"""

import collections

import numpy as np

from tflite_export._onnx_activations import MOVES_VALUES, PRODUCTS
from tflite_export._onnx_weights import exact_levels, fingerprint, rounded_levels

_WEIGHT_SLOTS = {op: slots[1] for op, slots in PRODUCTS.items()}  # The B of Gemm / MatMul, a Conv's kernel.


def int8_activations(graph):
    """Rewrites tf2onnx's uint8 Q/DQ zero points to int8 (zero point - 128): same numbers, TensorRT's form.

    A uint8 zero point is rewritten only if every node reading it is a
    QuantizeLinear, or a DequantizeLinear fed by one (directly or through
    ops that only move values, such as the Transpose tf2onnx puts between
    them).

    Example:

    >>> from onnx import numpy_helper
    >>> graph = _qdq_graph(zero_point=np.array(128, np.uint8))
    >>> int8_activations(graph)
    >>> numpy_helper.to_array(graph.initializer[1])
    array(0, dtype=int8)
    """
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


def quantize_weights(graph, grids=None, round_others=True):
    """Float weight initializers of MatMul/Gemm/Conv -> int8 initializer -> DequantizeLinear; returns how many.

    Symmetric, zero point 0, per output channel (MatMul: columns; Gemm:
    columns, rows with ``transB``; Conv: axis 0). A weight whose values a
    quantization wrapper rounded (its fingerprint in `grids`, see
    `_onnx_weights.kernel_grids`) keeps that wrapper's grid exactly (per
    channel or per tensor), as does one already on an int8 grid when `grids`
    is not empty; another is rounded to ``max|w| / 127`` per
    channel if `round_others`, else left float. Weights that are not
    float32, or not 2-D for MatMul / Gemm, stay as they are.

    Example:

    >>> from onnx import TensorProto, helper, numpy_helper
    >>> w = np.array([[1.0, -2.0, 0.5], [0.25, 4.0, -1.0]], np.float32)
    >>> graph = helper.make_graph(
    ...     [helper.make_node("MatMul", ["x", "w"], ["y"])],
    ...     "matmul",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    ...     [numpy_helper.from_array(w, "w")],
    ... )
    >>> quantize_weights(graph)
    1
    >>> [node.op_type for node in graph.node]
    ['DequantizeLinear', 'MatMul']
    >>> numpy_helper.to_array(graph.initializer[0])
    array([[ 127,  -64,   64],
           [  32,  127, -127]], dtype=int8)
    """
    from onnx import helper, numpy_helper

    grids = grids or {}
    inits = {init.name: init for init in graph.initializer}
    dequantized = {}
    new_nodes = []
    for node in graph.node:
        slot = _WEIGHT_SLOTS.get(node.op_type)
        if slot is None or len(node.input) <= slot or node.input[slot] not in inits:
            continue
        name = node.input[slot]
        axis = _channel_axis(node, inits[name])
        if axis is None:
            continue
        if (name, axis) not in dequantized:
            quantized = _int8_weight(numpy_helper.to_array(inits[name]), axis, grids, round_others)
            if quantized is None:
                continue
            levels, steps = quantized
            base = f"{name}_int8_weight"
            graph.initializer.extend(
                [
                    numpy_helper.from_array(levels, f"{base}_int8"),
                    numpy_helper.from_array(steps, f"{base}_scale"),
                    numpy_helper.from_array(np.zeros(steps.shape, np.int8), f"{base}_zero_point"),
                ]
            )
            out = f"{base}_dequantized"
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear",
                    [f"{base}_int8", f"{base}_scale", f"{base}_zero_point"],
                    [out],
                    name=f"{base}_DequantizeLinear",
                    **({"axis": axis} if steps.ndim else {}),
                )
            )
            dequantized[(name, axis)] = out
        node.input[slot] = dequantized[(name, axis)]

    # Dequantizers read only initializers, so they go first in topological order.
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return len(new_nodes)


def _channel_axis(node, init):
    """The output-channel axis of `node`'s float32 weight `init`, or None if it is not one we store as int8."""
    from onnx import TensorProto

    if init.data_type != TensorProto.FLOAT:
        return None
    if node.op_type == "Conv":
        return 0
    if len(init.dims) != 2:
        return None
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 1


def _int8_weight(weight, axis, grids, round_others):
    """``(levels, steps)`` for `weight`: its wrapper's grid, else an int8 grid it is on, else rounded (or None).

    A weight no wrapper's fingerprint names but already on a symmetric int8
    grid per output channel, in a model with wrappers, is a kernel its
    wrapper changed before rounding (a BatchNormalization folded in, outlier
    channels divided): it is stored exactly too.
    """
    grid = grids.get(fingerprint(weight))
    exact = None
    if grid is not None:
        exact = exact_levels(weight, axis if grid.per_channel else None, grid.bits)
    elif grids:
        exact = exact_levels(weight, axis, bits=8)
    if exact is not None:
        return exact
    return rounded_levels(weight, axis) if round_others else None


def count_qdq_pairs(graph):
    """Counts the DequantizeLinear nodes a QuantizeLinear feeds (quantized activations).

    Example:

    >>> count_qdq_pairs(_qdq_graph(zero_point=np.array(0, np.int8)))
    1
    """
    producers = {out: node for node in graph.node for out in node.output}
    return sum(1 for node in graph.node if node.op_type == "DequantizeLinear" and _fed_by_quantize(node, producers))


def _consumers(graph):
    uses = collections.defaultdict(list)
    for node in graph.node:
        for slot, name in enumerate(node.input):
            uses[name].append((node, slot))
    return uses


def _fed_by_quantize(node, producers):
    """Whether a QuantizeLinear feeds `node`, directly or through ops that only move values (a Transpose)."""
    producer = producers.get(node.input[0])
    while producer is not None and producer.op_type in MOVES_VALUES:
        producer = producers.get(producer.input[0])
    return producer is not None and producer.op_type == "QuantizeLinear"


def _qdq_graph(zero_point):
    """x -> QuantizeLinear -> DequantizeLinear -> y, scale 0.1: the pair tf2onnx writes for a fake-quant op."""
    from onnx import TensorProto, helper, numpy_helper

    return helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero_point"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [
            numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
            numpy_helper.from_array(zero_point, "zero_point"),
        ],
    )
