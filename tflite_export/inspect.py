"""What is inside a `.tflite`: inputs, outputs, ops and their dtypes.

`describe` reads the graph with the LiteRT interpreter (without the XNNPACK
delegate, so the op list is the one the converter wrote) and answers the
questions asked after a conversion: which ops, how many, is it full integer,
and which ops still touch float tensors.
"""

import collections
import dataclasses

import numpy as np

from tflite_export._runner import make_interpreter, read_model, signature_io

_FLOAT_KINDS = "fc"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph.

    Attributes:
        index: The tensor's index in the interpreter.
        name: The tensor name; for model inputs and outputs, the signature
            name (e.g. ``token_ids``) when the model has signatures.
        shape: The shape the interpreter allocated (dynamic dims show as 1).
        shape_signature: The shape with ``-1`` for dynamic dims.
        dtype: NumPy dtype name, e.g. ``"int8"``.
        scale: Quantization step of a per-tensor quantized tensor; ``None``
            for float tensors and per-channel weights (see `scales`).
        zero_point: Zero point matching `scale`, or ``None``.
        scales: Every quantization scale (several for per-channel weights).
        zero_points: Every zero point.
        is_constant: True for weights, biases and shape constants: tensors no
            op writes and that are not model inputs.
    """

    index: int
    name: str
    shape: tuple
    shape_signature: tuple
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    scales: tuple = dataclasses.field(default=(), repr=False)
    zero_points: tuple = dataclasses.field(default=(), repr=False)
    is_constant: bool = False

    @property
    def is_dynamic(self):
        """True if some dimension is only known at run time (``-1``)."""
        return -1 in self.shape_signature

    @property
    def is_float(self):
        return np.dtype(self.dtype).kind in _FLOAT_KINDS

    def __str__(self):
        shape = tuple(None if d < 0 else d for d in self.shape_signature)
        quant = "" if self.scale is None else f" scale={self.scale:.6g} zero_point={self.zero_point}"
        return f"{self.name} {self.dtype}{list(shape)}{quant}"


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One op, in execution order.

    Attributes:
        index: Position in the graph's execution order.
        name: The builtin op name, e.g. ``"FULLY_CONNECTED"``.
        inputs: Input tensors (omitted optional inputs are skipped).
        outputs: Output tensors.
    """

    index: int
    name: str
    inputs: tuple
    outputs: tuple

    def touches_float(self):
        """True if the op reads or writes a float tensor."""
        return any(t.is_float for t in self.inputs + self.outputs)


@dataclasses.dataclass(frozen=True)
class TFLiteModel:
    """A `.tflite` described: see `describe`.

    Attributes:
        size_bytes: Size of the flatbuffer.
        inputs: Model inputs (`TensorInfo`), named by signature when possible.
        outputs: Model outputs (`TensorInfo`).
        ops: The ops of the primary subgraph (`OpInfo`), in execution order.
        signature_key: The signature used for input/output names, or ``None``.
    """

    size_bytes: int
    inputs: tuple
    outputs: tuple
    ops: tuple = dataclasses.field(repr=False)
    signature_key: str | None = None

    def op_counts(self):
        """A `collections.Counter` of op names."""
        return collections.Counter(op.name for op in self.ops)

    def is_full_integer(self):
        """True if no op reads or writes a float tensor.

        Integer index tensors (token ids, shapes, int32 biases) are fine;
        a float tensor anywhere (float inputs or outputs with QUANTIZE /
        DEQUANTIZE at the edges, float16 weights, an op left in float)
        means the model is not full integer.
        """
        tensors = [t for op in self.ops for t in op.inputs + op.outputs] + list(self.inputs + self.outputs)
        return not any(t.is_float for t in tensors)

    def float_ops(self):
        """The ops that read or write a float tensor."""
        return [op for op in self.ops if op.touches_float()]

    def table(self):
        """A markdown table: op, count, input dtypes, output dtypes (in order of first use)."""
        rows = {}
        for op in self.ops:
            count, ins, outs = rows.get(op.name, (0, {}, {}))
            ins.update(dict.fromkeys(t.dtype for t in op.inputs))
            outs.update(dict.fromkeys(t.dtype for t in op.outputs))
            rows[op.name] = (count + 1, ins, outs)
        lines = ["| op | count | input dtypes | output dtypes |", "| --- | --- | --- | --- |"]
        for name, (count, ins, outs) in rows.items():
            lines.append(f"| {name} | {count} | {', '.join(ins)} | {', '.join(outs)} |")
        return "\n".join(lines)

    def __str__(self):
        kind = "full integer" if self.is_full_integer() else f"{len(self.float_ops())} ops touch float tensors"
        lines = [
            f"TFLite model: {self.size_bytes:,} bytes, {len(self.ops)} ops, {kind}",
            "inputs:  " + "; ".join(str(t) for t in self.inputs),
            "outputs: " + "; ".join(str(t) for t in self.outputs),
            "",
            self.table(),
        ]
        return "\n".join(lines)


def describe(model, signature_key=None):
    """Describes a `.tflite`: inputs, outputs, ops and dtypes.

    Args:
        model: Path to a `.tflite` file, or its bytes.
        signature_key: Signature whose names label the inputs and outputs;
            by default ``serving_default`` or the only one. Models converted
            from a concrete function without a trackable object have no
            signatures: their tensor names are used.

    Returns:
        A `TFLiteModel`.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: tf.nn.relu(x) * 2.0, input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    >>> info = describe(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert())
    >>> info.op_counts()
    Counter({'RELU': 1, 'MUL': 1})
    >>> info.inputs[0].name, info.inputs[0].shape, info.is_full_integer()
    ('x', (1, 4), False)
    >>> print(info.table())
    | op | count | input dtypes | output dtypes |
    | --- | --- | --- | --- |
    | RELU | 1 | float32 | float32 |
    | MUL | 1 | float32 | float32 |
    """
    data = read_model(model)
    interpreter = make_interpreter(data, delegates=False)
    key, inputs, outputs = signature_io(interpreter, signature_key)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    raw_ops = interpreter._get_ops_details()  # No public equivalent in LiteRT.
    written = {int(i) for op in raw_ops for i in op["outputs"]}
    model_inputs = {int(d["index"]) for d in inputs.values()}

    def tensor(index, name=None, d=None):
        d = details[index] if d is None else d
        scales = tuple(float(s) for s in d["quantization_parameters"]["scales"])
        zero_points = tuple(int(z) for z in d["quantization_parameters"]["zero_points"])
        per_tensor = len(scales) == 1
        return TensorInfo(
            index=int(index),
            name=name or d["name"],
            shape=tuple(int(s) for s in d["shape"]),
            shape_signature=tuple(int(s) for s in (d["shape_signature"] if len(d["shape_signature"]) else d["shape"])),
            dtype=np.dtype(d["dtype"]).name,
            scale=scales[0] if per_tensor else None,
            zero_point=zero_points[0] if per_tensor else None,
            scales=scales,
            zero_points=zero_points,
            is_constant=index not in written and index not in model_inputs,
        )

    ops = tuple(
        OpInfo(
            index=int(op["index"]),
            name=op["op_name"],
            inputs=tuple(tensor(int(i)) for i in op["inputs"] if i >= 0),
            outputs=tuple(tensor(int(i)) for i in op["outputs"] if i >= 0),
        )
        for op in raw_ops
    )
    return TFLiteModel(
        size_bytes=len(data),
        inputs=tuple(tensor(int(d["index"]), name, d) for name, d in inputs.items()),
        outputs=tuple(tensor(int(d["index"]), name, d) for name, d in outputs.items()),
        ops=ops,
        signature_key=key,
    )
