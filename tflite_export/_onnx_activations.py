"""A QuantizeLinear -> DequantizeLinear right before every activation a Gemm, MatMul or Conv reads.

Internal to `to_onnx`. tf2onnx writes a fake-quant op's pair where the op
was; between it and the product it feeds there are often ops that only move
values (the Reshape and Transpose of attention heads, a Slice taking BERT's
first token). The values still sit on the pair's grid, so the same pair
(same scale and zero point) written again right before the product rounds
nothing, and the product reads a DequantizeLinear, the pattern TensorRT runs
in int8. An input whose values come from anything else (arithmetic, or no
quantized tensor at all) is left as it is and counted by `float_inputs`.
"""

PRODUCTS = {"Gemm": (0, 1), "MatMul": (0, 1), "Conv": (0, 1)}  # Op -> input slots that are multiplied.

# Ops whose outputs are values of their first input (slot 0), or 0 (Relu), which every grid holds: the grid stays.
MOVES_VALUES = {
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
    "Slice",
    "Gather",
    "Expand",
    "MaxPool",
    "Relu",
}


def requantize_product_inputs(graph):
    """Writes the pair of the grid a product input is on again right before the product; returns how many.

    Only per-tensor grids (scalar scale) are written again: a per-channel
    axis does not survive a reshape.

    Example:

    >>> graph = _reshaped_qdq_graph()
    >>> requantize_product_inputs(graph)
    1
    >>> [node.op_type for node in graph.node]
    ['QuantizeLinear', 'DequantizeLinear', 'Reshape', 'QuantizeLinear', 'DequantizeLinear', 'MatMul']
    """
    from onnx import helper

    producers = {out: node for node in graph.node for out in node.output}
    inits = {init.name: init for init in graph.initializer}
    written = {}
    nodes = []
    for node in graph.node:
        for slot in PRODUCTS.get(node.op_type, ()):
            if slot >= len(node.input) or _from_dequantize(node.input[slot], producers):
                continue
            source = _grid_source(node.input[slot], producers, inits)
            if source is None:
                continue
            name = node.input[slot]
            if name not in written:
                scale, zero_point = source.input[1], source.input[2]
                base = f"{name}_requantized"
                nodes += [
                    helper.make_node("QuantizeLinear", [name, scale, zero_point], [f"{base}_q"], name=f"{base}_Q"),
                    helper.make_node("DequantizeLinear", [f"{base}_q", scale, zero_point], [base], name=f"{base}_DQ"),
                ]
                written[name] = base
            node.input[slot] = written[name]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(written)


def float_inputs(graph):
    """The Gemm / MatMul / Conv inputs not produced by a DequantizeLinear (they run in float).

    Example:

    >>> float_inputs(_reshaped_qdq_graph())
    ['r', 'w']
    """
    producers = {out: node for node in graph.node for out in node.output}
    return [
        node.input[slot]
        for node in graph.node
        for slot in PRODUCTS.get(node.op_type, ())
        if slot < len(node.input) and not _from_dequantize(node.input[slot], producers)
    ]


def _from_dequantize(name, producers):
    producer = producers.get(name)
    return producer is not None and producer.op_type == "DequantizeLinear"


def _grid_source(name, producers, inits):
    """The per-tensor DequantizeLinear whose values reach `name` through value-moving ops only, or None."""
    node = producers.get(name)
    while node is not None and node.op_type in MOVES_VALUES:
        node = producers.get(node.input[0])
    if node is None or node.op_type != "DequantizeLinear" or len(node.input) < 3:
        return None
    scale = inits.get(node.input[1])
    return node if scale is not None and len(scale.dims) == 0 else None


def _reshaped_qdq_graph():
    """x -> Q -> DQ -> Reshape -> r; MatMul(r, w): the reshaped pair of an attention head."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    return helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero_point"], ["d"]),
            helper.make_node("Reshape", ["d", "shape"], ["r"]),
            helper.make_node("MatMul", ["r", "w"], ["y"]),
        ],
        "reshaped_qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [
            numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zero_point"),
            numpy_helper.from_array(np.array([2, 2], np.int64), "shape"),
            numpy_helper.from_array(np.eye(2, dtype=np.float32), "w"),
        ],
    )
