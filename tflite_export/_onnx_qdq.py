"""QuantizeLinear / DequantizeLinear rewrites of a tf2onnx graph, in place.

Internal to `to_onnx`. tf2onnx turns every per-tensor 8-bit fake-quant op of a
quantization-aware model into a uint8 QuantizeLinear -> DequantizeLinear pair;
`int8_activations` rewrites the pairs to the equivalent int8 ones (zero point
- 128, same numbers), the explicit-quantization form TensorRT reads.
`quantize_weights` stores the float weights of MatMul, Gemm and
Conv as int8 initializers -> DequantizeLinear (symmetric, per output channel).
"""

import collections

import numpy as np

_WEIGHT_SLOTS = {"MatMul": 1, "Gemm": 1, "Conv": 1}


def int8_activations(graph):
    """Rewrites tf2onnx's uint8 Q/DQ zero points to int8 (zero point - 128): same numbers, TensorRT's form.

    A uint8 zero point is rewritten only if every node reading it is a
    QuantizeLinear, or a DequantizeLinear fed by one.

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


def quantize_weights(graph):
    """Float weight initializers of MatMul/Gemm/Conv -> int8 initializer -> DequantizeLinear (per channel).

    Symmetric: scale ``max|w| / 127`` per output channel (MatMul: columns;
    Gemm: columns, rows with ``transB``; Conv: axis 0), zero point 0. Weights
    that are not float32, or not 2-D for MatMul / Gemm, stay as they are.

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
    >>> [node.op_type for node in graph.node]
    ['DequantizeLinear', 'MatMul']
    >>> numpy_helper.to_array(graph.initializer[0])
    array([[ 127,  -64,   64],
           [  32,  127, -127]], dtype=int8)
    """
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


def count_qdq_pairs(graph):
    """Counts the DequantizeLinear nodes fed by a QuantizeLinear (quantized activations).

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
    producer = producers.get(node.input[0])
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
