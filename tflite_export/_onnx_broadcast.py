"""The Min / Max of a broadcast, taken before the broadcast: what lets tf2onnx read a dynamic-batch QAT BERT.

Internal to `to_onnx`. keras-hub's ``PositionEmbedding`` broadcasts its table
to the input's shape, batch included, and its quantization wrapper rounds
that constant on its own range: the Min and Max of the broadcast. With a
dynamic batch the broadcast shape is not constant, so TensorFlow's constant
folding leaves the Min, the Max and the range arithmetic after them (a
Bitcast among it) in the graph, and tf2onnx converts neither the Bitcast nor
a fake-quant op whose range is not constant. A broadcast only repeats
values: reducing its input over all of that input's axes gives the same Min
and Max, which then fold to constants.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2
from tensorflow.python.framework import tensor_util

_REDUCTIONS = ("Min", "Max")


def reduce_before_broadcast(graph_def):
    """Rewrites, in place, every all-axes Min / Max of a BroadcastTo to reduce the BroadcastTo's input.

    Returns the number of reductions rewritten.

    Example:

    >>> graph = tf.Graph()
    >>> with graph.as_default():
    ...     x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
    ...     shape = tf.stack([tf.shape(x)[0], 3])  # (batch, 3), as keras-hub's PositionEmbedding packs it.
    ...     low = tf.reduce_min(tf.broadcast_to(tf.constant([1.0, -2.0, 3.0], name="table"), shape), name="low")
    >>> graph_def = graph.as_graph_def()
    >>> reduce_before_broadcast(graph_def)
    1
    >>> [list(node.input) for node in graph_def.node if node.name == "low"]
    [['table', 'low/before_broadcast/axes']]
    """
    nodes = {node.name: node for node in graph_def.node}
    rewritten = 0
    for node in list(graph_def.node):
        if node.op not in _REDUCTIONS or node.attr["keep_dims"].b:
            continue
        broadcast = nodes.get(_node_name(node.input[0]))
        if broadcast is None or broadcast.op != "BroadcastTo":
            continue
        rank = _length(nodes.get(_node_name(broadcast.input[1])))
        if rank is None or _values(nodes.get(_node_name(node.input[1]))) != list(range(rank)):
            continue
        source = broadcast.input[0]
        node.input[0] = source
        node.input[1] = _add_all_axes(graph_def, f"{node.name}/before_broadcast", source, node)
        rewritten += 1
    return rewritten


def _node_name(tensor):
    """``"name"`` of a tensor ``"name:0"`` or ``"^name"``."""
    return tensor.lstrip("^").split(":")[0]


def _values(node):
    """The values of a Const node as a list, or None."""
    if node is None or node.op != "Const":
        return None
    return np.atleast_1d(tensor_util.MakeNdarray(node.attr["value"].tensor)).tolist()


def _length(shape):
    """The length of a shape vector made by a Pack or a Const node, or None."""
    if shape is not None and shape.op == "Pack":
        return shape.attr["N"].i
    values = _values(shape)
    return None if values is None else len(values)


def _add_all_axes(graph_def, prefix, tensor, reduction):
    """Adds ``Range(0, Rank(tensor), 1)``, typed as `reduction`'s axes, to `graph_def`; returns its name."""
    index_type = reduction.attr["Tidx"].type

    def add(name, op, inputs=(), **attrs):
        node = graph_def.node.add(name=f"{prefix}/{name}", op=op, input=list(inputs))
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        return node.name

    def const(name, value):
        array = np.array(value, tf.dtypes.as_dtype(index_type).as_numpy_dtype)
        value = attr_value_pb2.AttrValue(tensor=tensor_util.make_tensor_proto(array))
        return add(name, "Const", dtype=attr_value_pb2.AttrValue(type=index_type), value=value)

    rank = add("rank", "Rank", [tensor], T=reduction.attr["T"])
    if index_type != tf.int32.as_datatype_enum:
        int32 = attr_value_pb2.AttrValue(type=tf.int32.as_datatype_enum)
        rank = add("rank_cast", "Cast", [rank], SrcT=int32, DstT=attr_value_pb2.AttrValue(type=index_type))
    index = attr_value_pb2.AttrValue(type=index_type)
    return add("axes", "Range", [const("start", 0), rank, const("delta", 1)], Tidx=index)
