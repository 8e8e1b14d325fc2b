"""Would this `.tflite` compile for the Coral Edge TPU? An offline readiness check.

The Edge TPU compiler cannot be installed everywhere, so this module checks
what Coral documents (https://coral.ai/docs/edgetpu/models-intro/):

- the model is fully 8-bit quantized: tensors are int8/uint8 (int32 only for
  constants such as biases, shapes and axes);
- tensor sizes are constant at compile time (no ``-1`` in a shape) and the
  inputs have batch size 1;
- tensors have at most 3 dimensions, or only their 3 innermost dimensions
  may be larger than 1;
- every op is in the supported-op table below, with the limits that can be
  checked from the graph alone (`SOFTMAX` on 1-D inputs of at most 16,000
  elements, `FULLY_CONNECTED` with a one-dimensional output).

The compiler maps ops in order: from the first op it cannot map, everything
runs on the CPU, so `first_cpu_op` is where the Edge TPU part ends. The
compiler has the final word; this report tells you before you go find it.
"""

import dataclasses

import numpy as np

from tflite_export.inspect import describe

# TFLite op -> limits, from Coral's "Supported operations" table (models-intro).
# An empty note means the table lists no limit for the op.
EDGETPU_OPS = {
    "ADD": "",
    "AVERAGE_POOL_2D": "No fused activation function.",
    "CONCATENATION": (
        "No fused activation function. If any input is a compile-time constant tensor, there must be only 2 "
        "inputs, and this constant tensor must be all zeroes (effectively, a zero-padding op)."
    ),
    "CONV_2D": "Must use the same dilation in x and y dimensions.",
    "DEPTHWISE_CONV_2D": "Must use the same dilation in x and y dimensions.",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": (
        "Only the default format is supported for fully-connected weights. Output tensor is one-dimensional."
    ),
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "Unidirectional LSTM only.",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "Listed as LSTM: unidirectional LSTM only.",
    "MAXIMUM": "",
    "MAX_POOL_2D": "No fused activation function.",
    "MEAN": "No reduction in batch dimension. If a z-reduction, the z-dimension must be a multiple of 4.",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "No packing in batch dimension.",
    "PAD": "No padding in batch dimension.",
    "PRELU": "Alpha must be 1-dimensional (only the innermost dimension can be larger than 1).",
    "QUANTIZE": "",
    "REDUCE_MAX": "Cannot operate on the batch dimension.",
    "REDUCE_MIN": "Cannot operate on the batch dimension.",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "Certain reshapes might not be mapped for large tensor sizes.",
    "RESIZE_BILINEAR": (
        "Input/output is a 3-dimensional tensor. Depending on input/output size, this operation may not be "
        "mapped to the Edge TPU to avoid loss in precision."
    ),
    "RESIZE_NEAREST_NEIGHBOR": (
        "Input/output is a 3-dimensional tensor. Depending on input/output size, this operation may not be "
        "mapped to the Edge TPU to avoid loss in precision."
    ),
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "Supports only 1-D input tensor with a max of 16,000 elements.",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "No splitting in batch dimension.",
    "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": (
        "Supported only when all strides are equal to 1 (effectively a slice), with no ellipsis or new-axis mask."
    ),
    "SUB": "",
    "SUM": "Cannot operate on the batch dimension.",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}

# Ops newer models often contain that are not in the table: they run on the CPU.
NOT_SUPPORTED_HINTS = {
    "BATCH_MATMUL": "activation x activation (attention, a LayerNorm's sum of squares); not in the Edge TPU list",
    "GELU": "not in the Edge TPU list; RELU maps",
    "GATHER": "embedding lookup; not in the Edge TPU list",
    "DEQUANTIZE": "converts back to float: part of the graph is not quantized",
    "HARD_SWISH": "not in the Edge TPU list",
    "LOG_SOFTMAX": "not in the Edge TPU list",
    "DIV": "not in the Edge TPU list",
    "EXP": "not in the Edge TPU list",
    "POW": "not in the Edge TPU list",
    "SQRT": "not in the Edge TPU list; RSQRT maps",
    "CAST": "not in the Edge TPU list",
    "CUMSUM": "not in the Edge TPU list",
}

_EDGE_TPU_DTYPES = ("int8", "uint8")
_CONSTANT_DTYPES = ("int8", "uint8", "int32")
_SOFTMAX_MAX_ELEMENTS = 16_000


@dataclasses.dataclass(frozen=True)
class EdgeTPUOp:
    """One op of the report.

    Attributes:
        index: The op's position in execution order.
        name: The TFLite op name.
        supported: True if the op passes every offline check.
        on_edgetpu: True if the op comes before the first CPU op.
        reasons: Why the op cannot be mapped (empty if `supported`).
        note: Coral's documented limits for the op, to check by hand.
    """

    index: int
    name: str
    supported: bool
    on_edgetpu: bool
    reasons: tuple = ()
    note: str = ""


@dataclasses.dataclass(frozen=True)
class EdgeTPUReport:
    """The result of `check_edgetpu`.

    Attributes:
        ready: True if the whole graph should map to the Edge TPU.
        problems: Readable reasons it does not, model-wide first.
        first_cpu_op: ``(index, name)`` of the first op that would run on
            the CPU (it and every later op do), or ``None``.
        mapped_ops: Ops before `first_cpu_op`, which would run on the Edge TPU.
        total_ops: Ops in the graph.
        ops: One `EdgeTPUOp` per op.
    """

    ready: bool
    problems: tuple
    first_cpu_op: tuple | None
    mapped_ops: int
    total_ops: int
    ops: tuple = dataclasses.field(repr=False)

    @property
    def verdict(self):
        """One line: ``ready`` or ``not ready: <main reasons>``."""
        if self.ready:
            return f"ready: all {self.total_ops} ops map to the Edge TPU"
        reasons = list(dict.fromkeys(p.split(":")[0] for p in self.problems if not p.startswith("op #")))
        if self.first_cpu_op is not None and any(p.startswith("op #") for p in self.problems):
            index, name = self.first_cpu_op
            reasons.append(f"op #{index} {name} and every later op would run on the CPU")
        return "not ready: " + "; ".join(reasons)

    def table(self):
        """A markdown table of every op: where it runs and why."""
        lines = ["| # | op | runs on | problems |", "| --- | --- | --- | --- |"]
        for op in self.ops:
            where = "Edge TPU" if op.on_edgetpu else "CPU"
            lines.append(f"| {op.index} | {op.name} | {where} | {'; '.join(op.reasons)} |")
        return "\n".join(lines)

    def __str__(self):
        lines = [f"Edge TPU: {self.verdict}"]
        lines.append(f"{self.mapped_ops} of {self.total_ops} ops would run on the Edge TPU")
        if self.first_cpu_op is not None:
            index, name = self.first_cpu_op
            lines.append(f"first CPU op: #{index} {name} (it and every later op run on the CPU)")
        lines += [f"- {p}" for p in self.problems[:10]]
        if len(self.problems) > 10:
            lines.append(f"- ... and {len(self.problems) - 10} more")
        notes = {op.name: op.note for op in self.ops if op.on_edgetpu and op.note}
        lines += [f"check by hand ({name}): {note}" for name, note in notes.items()]
        return "\n".join(lines)


def check_edgetpu(path):
    """Checks offline whether a `.tflite` would compile fully for the Edge TPU.

    Args:
        path: Path to a `.tflite` file, or its bytes.

    Returns:
        An `EdgeTPUReport`; `print` it for a short readable report.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: tf.nn.relu(x), input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    >>> report = check_edgetpu(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert())
    >>> report.ready, report.first_cpu_op
    (False, (0, 'RELU'))
    >>> print(report.verdict)
    not ready: tensors are float32
    """
    model = describe(path)
    problems = _model_problems(model)
    rows, first = [], None
    for op in model.ops:
        reasons = _op_reasons(op)
        if reasons and first is None:
            first = (op.index, op.name)
        rows.append(
            EdgeTPUOp(
                index=op.index,
                name=op.name,
                supported=not reasons,
                on_edgetpu=first is None,
                reasons=tuple(reasons),
                note=EDGETPU_OPS.get(op.name, ""),
            )
        )
    for row in rows:
        if row.reasons and not _is_model_wide(row.reasons):
            problems.append(f"op #{row.index} {row.name}: {'; '.join(row.reasons)}")
    mapped = sum(row.on_edgetpu for row in rows)
    return EdgeTPUReport(
        ready=not problems and mapped == len(rows),
        problems=tuple(problems),
        first_cpu_op=first,
        mapped_ops=mapped,
        total_ops=len(rows),
        ops=tuple(rows),
    )


def _model_problems(model):
    """Problems that concern the whole graph: dtypes, dynamic shapes, batch size."""
    tensors = {t.index: t for op in model.ops for t in op.inputs + op.outputs}
    tensors.update({t.index: t for t in model.inputs + model.outputs})
    problems = []
    bad = {}
    for t in tensors.values():
        if not _dtype_ok(t):
            bad.setdefault(t.dtype, []).append(t.name)
    if bad:
        examples = ", ".join(f"{dtype} '{names[0]}'" for dtype, names in bad.items())
        count = sum(len(names) for names in bad.values())
        problems.append(
            f"tensors are {', '.join(bad)}: {count} tensor(s), e.g. {examples}; the Edge TPU needs a fully"
            " int8/uint8 quantized model (int32 only for constants such as biases)"
        )
    dynamic = [t for t in tensors.values() if t.is_dynamic]
    for t in model.inputs + model.outputs:
        if t.is_dynamic:
            problems.append(
                f"dynamic shape: '{t.name}' has shape_signature {t.shape_signature}; convert with a fixed"
                " input shape (batch 1)"
            )
    if dynamic and not any(t.is_dynamic for t in model.inputs + model.outputs):
        problems.append(f"dynamic shape: {len(dynamic)} tensor(s) have unknown sizes, e.g. '{dynamic[0].name}'")
    for t in model.inputs:
        if t.shape_signature and t.shape_signature[0] not in (1, -1):
            problems.append(f"batch size: input '{t.name}' has batch {t.shape_signature[0]}; the Edge TPU needs 1")
    return problems


_MODEL_WIDE = ("tensor ", "dynamic ")


def _is_model_wide(reasons):
    """True if every reason is already reported model-wide (dtype, dynamic shape)."""
    return all(r.startswith(_MODEL_WIDE) for r in reasons)


def _dtype_ok(tensor):
    allowed = _CONSTANT_DTYPES if tensor.is_constant else _EDGE_TPU_DTYPES
    return tensor.dtype in allowed


def _op_reasons(op):
    """Why `op` cannot run on the Edge TPU (empty if it passes the offline checks)."""
    reasons = []
    if op.name not in EDGETPU_OPS:
        hint = NOT_SUPPORTED_HINTS.get(op.name, "not in the Edge TPU supported-op list")
        reasons.append(f"{op.name} is {hint}" if hint.startswith("not") else f"{op.name}: {hint}")
    tensors = op.inputs + op.outputs
    for t in tensors:
        if not _dtype_ok(t):
            reasons.append(f"tensor '{t.name}' is {t.dtype}")
        if t.is_dynamic:
            reasons.append(f"dynamic tensor '{t.name}' {t.shape_signature}")
    for t in tensors:
        if not t.is_constant and any(d > 1 for d in t.shape[:-3]):
            reasons.append(f"'{t.name}' has shape {t.shape}: only the 3 innermost dimensions may be larger than 1")
    if op.name == "SOFTMAX" and op.inputs:
        shape = op.inputs[0].shape
        if sum(d > 1 for d in shape) > 1 or int(np.prod(shape)) > _SOFTMAX_MAX_ELEMENTS:
            reasons.append(f"softmax input {shape}: supports only a 1-D input of at most 16,000 elements")
    if op.name == "FULLY_CONNECTED" and op.outputs and sum(d > 1 for d in op.outputs[0].shape) > 1:
        reasons.append(f"fully-connected output {op.outputs[0].shape}: output tensor must be one-dimensional")
    return reasons
