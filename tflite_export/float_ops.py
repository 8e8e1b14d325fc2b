"""`run_in_float`: chosen int8 ops of a `.tflite` computed in float32, for CPUs.

XNNPACK, LiteRT's CPU delegate, has no int8 kernel for SOFTMAX, GELU, RSQRT
or MAXIMUM. In a full-int8 graph those ops run on LiteRT's built-in kernels:
one thread, and every one of them splits the graph XNNPACK runs. XNNPACK does
have float32 kernels for them, and int8 <-> float32 conversions. So each such
op can become ``DEQUANTIZE -> op in float32 -> QUANTIZE``, with the same int8
tensors before and after (an int8 constant operand becomes a float32
constant of the same values). The new ops are delegated with their
neighbours.

At MiniLM shapes (`benchmarks/int8_op_profile.py`, one run, 2 threads):
SOFTMAX over 12 heads of 64 x 64 took 42 µs instead of 139 µs, GELU over
64 x 1,536 8 µs instead of 28 µs, and the LayerNorm block (MAXIMUM and RSQRT
in float32) 24 µs instead of 32 µs. In the tests, the float form is within
one output step of each int8 kernel (on random inputs, mostly the same
values). The int8 kernels approximate the float function and round to the
output grid. A quantization-aware model computes the float function and
rounds it to that grid, which is what the float form does.

Not every op XNNPACK lacks an int8 kernel for is worth moving: the
LayerNorm's row sums of squares (an int8 BATCH_MATMUL whose right operand has
a zero point) took a calibrated MiniLM from 2.2 to 4.2 ms as float32 BATCH_MATMULs,
because XNNPACK packs a float product's right operand at every run.

The file is then no longer full integer. An Edge TPU or an NPU would run its
graph only up to the first DEQUANTIZE, so `convert` leaves the default
(``float_ops=()``) full int8.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from kcompress._errors import expected_error

# Ops whose int8 form LiteRT runs on built-in kernels and whose float32 form
# XNNPACK runs; each writes one output, from one activation (MAXIMUM: and a
# constant floor, in kcompress's LayerNorm).
FLOAT_OPS = ("GELU", "MAXIMUM", "RSQRT", "SOFTMAX")

_DEQUANTIZE_VERSION = 2  # int8 input
_QUANTIZE_VERSION = 2  # int8 output


def check_float_ops(float_ops):
    """Returns `float_ops` as a sorted tuple of op names; raises on anything else.

    Example:

    >>> check_float_ops(["SOFTMAX", "GELU"])
    ('GELU', 'SOFTMAX')
    >>> check_float_ops(("CONV_2D",))
    Traceback (most recent call last):
    ...
    ValueError: Expected float_ops among ('GELU', 'MAXIMUM', 'RSQRT', 'SOFTMAX'). Received: float_ops=('CONV_2D',)
    """
    if isinstance(float_ops, str) or not isinstance(float_ops, (list, tuple, set, frozenset)):
        raise expected_error(f"float_ops as a tuple of op names among {FLOAT_OPS}", float_ops=float_ops)
    names = tuple(float_ops)
    if any(name not in FLOAT_OPS for name in names):
        raise expected_error(f"float_ops among {FLOAT_OPS}", float_ops=names)
    return tuple(sorted(set(names)))


def run_in_float(flatbuffer, float_ops):
    """Rewrites each int8 op named in `float_ops` as DEQUANTIZE, the op in float32, QUANTIZE.

    The op keeps its options, and the int8 tensors around it keep their
    scales. Only ops whose first input and first output are int8 change; of
    their other inputs, int8 activations get a DEQUANTIZE too and int8
    constants a float32 copy.

    Args:
        flatbuffer: The `.tflite` bytes.
        float_ops: Op names among `FLOAT_OPS`.

    Returns:
        ``(bytes, counts)``: the new flatbuffer, and a dict of how many ops of
        each name now compute in float32.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> fq = tf.quantization.fake_quant_with_min_max_vars
    >>> f = tf.function(lambda x: fq(tf.nn.softmax(fq(x, -8.0, 8.0)), 0.0, 255 / 256),
    ...                 input_signature=[tf.TensorSpec([1, 4, 8])])
    >>> converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    >>> converter.optimizations = [tf.lite.Optimize.DEFAULT]
    >>> converter.inference_input_type = converter.inference_output_type = tf.int8
    >>> rewritten, counts = run_in_float(converter.convert(), ["SOFTMAX"])
    >>> counts
    {'SOFTMAX': 1}
    >>> from tflite_export.inspect import describe
    >>> [op.name for op in describe(rewritten).ops]
    ['DEQUANTIZE', 'SOFTMAX', 'QUANTIZE']
    """
    wanted = {getattr(schema.BuiltinOperator, name): name for name in check_float_ops(float_ops)}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    counts = {}
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            code = flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            tensors = subgraph.tensors
            if code in wanted and _is_int8(tensors[op.inputs[0]]) and _is_int8(tensors[op.outputs[0]]):
                operators.extend(_in_float(model, subgraph, op))
                counts[wanted[code]] = counts.get(wanted[code], 0) + 1
            else:
                operators.append(op)
        subgraph.operators = operators
    if not counts:
        return bytes(flatbuffer), counts
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), counts


def _is_int8(tensor):
    return tensor.type == schema.TensorType.INT8


def _in_float(model, subgraph, op):
    """The operators that replace `op`: DEQUANTIZEs, `op` on float32 tensors, QUANTIZE."""
    operators, twins = [], {}
    for index in op.inputs:
        tensor = subgraph.tensors[index] if index >= 0 else None
        if tensor is None or not _is_int8(tensor) or index in twins:
            continue  # Optional (-1) or integer (axes, shapes) inputs stay; one twin per tensor.
        if _data(model, tensor) is not None:
            twins[index] = _float_twin(subgraph, index, buffer=_float_buffer(model, tensor))
        else:
            twins[index] = _float_twin(subgraph, index)
            operators.append(
                _operator(model, schema.BuiltinOperator.DEQUANTIZE, _DEQUANTIZE_VERSION, index, twins[index])
            )
    inputs = [twins.get(index, index) for index in op.inputs]
    int8_output = op.outputs[0]
    float_output = _float_twin(subgraph, int8_output)
    quantize = _operator(model, schema.BuiltinOperator.QUANTIZE, _QUANTIZE_VERSION, float_output, int8_output)
    op.inputs = inputs
    op.outputs = [float_output, *list(op.outputs)[1:]]
    return [*operators, op, quantize]


def _data(model, tensor):
    """A constant tensor's bytes (a numpy uint8 array), or None for an activation."""
    data = model.buffers[tensor.buffer].data if tensor.buffer > 0 else None
    return None if data is None or len(data) == 0 else np.asarray(data, dtype=np.uint8)


def _float_buffer(model, tensor):
    """Appends a buffer holding int8 constant `tensor` dequantized to float32; returns its index."""
    quantization = tensor.quantization
    values = _data(model, tensor).view(np.int8).astype(np.float32).reshape(tensor.shape)
    scale = np.asarray(quantization.scale, np.float32)
    zero_point = np.asarray(quantization.zeroPoint, np.float32)
    if scale.size > 1:  # Per-axis: the scales run along the quantized dimension.
        shape = [1] * values.ndim
        shape[quantization.quantizedDimension] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    buffer = schema.BufferT()
    buffer.data = ((values - zero_point) * scale).astype(np.float32).view(np.uint8).ravel()
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _float_twin(subgraph, index, buffer=0):
    """Appends a float32 tensor shaped like tensor `index` (a constant if `buffer`); returns its index."""
    source = subgraph.tensors[index]
    name = source.name.decode() if isinstance(source.name, bytes) else source.name
    twin = schema.TensorT()
    twin.name = f"{name}/float32"
    twin.shape = source.shape
    twin.shapeSignature = source.shapeSignature
    twin.type = schema.TensorType.FLOAT32
    twin.buffer = buffer  # 0: an activation, with no data of its own.
    subgraph.tensors.append(twin)
    return len(subgraph.tensors) - 1


def _operator(model, code, version, input_index, output_index):
    operator = schema.OperatorT()
    operator.opcodeIndex = _opcode_index(model, code, version)
    operator.inputs = [input_index]
    operator.outputs = [output_index]
    return operator


def _opcode_index(model, code, version):
    """The index of `code` in the model's operator codes, added (at `version`) if missing."""
    for index, opcode in enumerate(model.operatorCodes):
        if flatbuffer_utils.get_builtin_code_from_operator_code(opcode) == code:
            opcode.version = max(opcode.version, version)
            return index
    opcode = schema.OperatorCodeT()
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    opcode.version = version
    model.operatorCodes.append(opcode)
    return len(model.operatorCodes) - 1
