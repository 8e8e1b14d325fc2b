"""Runs examples through a `.tflite` with the LiteRT interpreter.

Internal: `verify` and `benchmark` are built on `Runner`. It finds the model's
inputs by their signature names (``token_ids``, ``padding_mask`` for a
keras-hub model), checks shapes and dtypes, quantizes float inputs of int8,
uint8 and int16 models, and dequantizes their outputs.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from kcompress._errors import check_int, expected_error

QUANTIZED_DTYPES = ("int8", "uint8", "int16")


def read_model(model):
    """Returns the bytes of a `.tflite` given as a path or as its bytes.

    Example:

    >>> read_model(b"not a model")
    Traceback (most recent call last):
    ...
    ValueError: Expected a TFLite flatbuffer (file identifier 'TFL3'). Received: model='<11 bytes>'
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, shown = bytes(model), f"<{len(model)} bytes>"
    elif isinstance(model, (str, os.PathLike)):
        path = Path(os.fspath(model))
        if not path.is_file():
            raise expected_error("a path to an existing .tflite file", model=str(path))
        data, shown = path.read_bytes(), str(path)
    else:
        raise expected_error("a .tflite path or its bytes", model=type(model).__name__)
    if data[4:8] != b"TFL3":
        raise expected_error("a TFLite flatbuffer (file identifier 'TFL3')", model=shown)
    return data


def make_interpreter(data, num_threads=None, delegates=True):
    """A LiteRT `Interpreter`; `delegates=False` keeps XNNPACK out (op lists stay as written)."""
    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_content=data, num_threads=num_threads, experimental_op_resolver_type=resolver)


def xnnpack_parts(model, num_threads=1):
    """The parts of a graph that LiteRT's default CPU delegate (XNNPACK) runs.

    Every op XNNPACK does not take splits the graph it runs. LiteRT's Python
    API has no public call for this; the interpreter's nodes after
    `allocate_tensors` include one DELEGATE node per part.

    Args:
        model: A `.tflite` path or its bytes.
        num_threads: Interpreter threads.

    Returns:
        A list with, for each part, ``(input tensor indices, output tensor indices)``.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: tf.nn.relu(x), input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    >>> len(xnnpack_parts(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()))
    1
    """
    interpreter = make_interpreter(read_model(model), num_threads=num_threads)
    interpreter.allocate_tensors()  # LiteRT applies its default delegate here.
    nodes = interpreter._interpreter
    return [
        (tuple(nodes.NodeInputs(i)), tuple(nodes.NodeOutputs(i)))
        for i in range(nodes.NumNodes())
        if nodes.NodeName(i) == "DELEGATE"
    ]


def _clean_name(name):
    """``serving_default_token_ids:0`` -> ``token_ids``."""
    name = name.removeprefix("serving_default_")
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def signature_io(interpreter, signature_key=None):
    """Returns ``(key, inputs, outputs)``: name -> tensor details, in tensor order.

    Models with signatures use the signature's names (``token_ids``); others
    the tensor names without ``serving_default_`` and ``:0``. The key is
    ``None`` for models without signatures.
    """
    keys = list(interpreter.get_signature_list())
    if signature_key is not None and signature_key not in keys:
        raise expected_error(f"a signature key in {keys}", signature_key=signature_key)
    key = signature_key or ("serving_default" if "serving_default" in keys else (keys[0] if keys else None))
    if key is None:
        named = []
        for details in (interpreter.get_input_details(), interpreter.get_output_details()):
            names = [_clean_name(d["name"]) for d in details]
            if len(set(names)) < len(names):
                names = [d["name"] for d in details]
            named.append(dict(zip(names, details)))
        inputs, outputs = named
    else:
        runner = interpreter.get_signature_runner(key)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
    by_index = lambda details: dict(sorted(details.items(), key=lambda item: item[1]["index"]))
    return key, by_index(inputs), by_index(outputs)


def quantization(details):
    """``(scale, zero_point)`` of a per-tensor quantized int tensor, else ``(None, None)``."""
    params = details["quantization_parameters"]
    if np.dtype(details["dtype"]).name not in QUANTIZED_DTYPES or len(params["scales"]) != 1:
        return None, None
    return float(params["scales"][0]), int(params["zero_points"][0])


def quantize(x, scale, zero_point, dtype):
    """``round(x / scale) + zero_point``, clipped to `dtype`, rounding halves away from zero like TFLite.

    Example:

    >>> quantize(np.array([0.0, 0.26, -1.0, 99.0]), 0.1, -1, "int8").tolist()
    [-1, 2, -11, 127]
    """
    scaled = np.asarray(x, np.float64) / scale
    rounded = np.trunc(scaled + np.copysign(0.5, scaled)) + zero_point
    info = np.iinfo(dtype)
    return np.clip(rounded, info.min, info.max).astype(dtype)


def dequantize(q, scale, zero_point):
    """``(q - zero_point) * scale`` as float32."""
    return ((np.asarray(q, np.float32) - zero_point) * scale).astype(np.float32)


def shown_shape(details):
    """The tensor's shape with dynamic (-1) dims shown as None."""
    signature = details["shape_signature"] if len(details["shape_signature"]) else details["shape"]
    return tuple(None if d < 0 else int(d) for d in signature)


@dataclasses.dataclass(frozen=True)
class Output:
    """One output of a run.

    Attributes:
        name: The output's signature (or tensor) name.
        value: The output as real numbers: dequantized for int8/uint8/int16
            outputs, as returned otherwise.
        raw: The output exactly as the interpreter returned it.
        scale: The quantization step of an int output, ``None`` for float.
        zero_point: The zero point of an int output, ``None`` for float.
    """

    name: str
    value: np.ndarray = dataclasses.field(repr=False)
    raw: np.ndarray = dataclasses.field(repr=False)
    scale: float | None
    zero_point: int | None


class Runner:
    """A `.tflite` loaded into a LiteRT interpreter, fed one example at a time.

    Args:
        model: Path to a `.tflite` file, or its bytes.
        num_threads: Interpreter threads (>= 1).
        signature_key: Signature to run; by default ``serving_default``, or
            the only one, or (no signatures) the model's plain inputs.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: 2.0 * x, input_signature=[tf.TensorSpec([1, 3], tf.float32, name="x")])
    >>> runner = Runner(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert())
    >>> runner.input_names, runner.batch_size
    (['x'], 1)
    >>> runner.run(np.ones((1, 3)))[runner.output_names[0]].value.tolist()
    [[2.0, 2.0, 2.0]]
    >>> runner.run(np.ones((1, 4)))
    Traceback (most recent call last):
    ...
    ValueError: Expected input 'x' of shape (1, 3) float32. Received: shape=(1, 4)
    """

    def __init__(self, model, num_threads=1, signature_key=None):
        self.num_threads = check_int("num_threads", num_threads, minimum=1)
        self.model_bytes = read_model(model)
        self.interpreter = make_interpreter(self.model_bytes, num_threads=self.num_threads)
        self.interpreter.allocate_tensors()
        self.signature_key, self.input_details, self.output_details = signature_io(self.interpreter, signature_key)
        # The primary subgraph is fed through the interpreter itself (so that
        # `invoke` alone can be timed); other signatures through their runner.
        runner = None if self.signature_key is None else self.interpreter.get_signature_runner(self.signature_key)
        self._direct = runner is None or getattr(runner, "_subgraph_index", None) == 0
        self._signature_runner = None if self._direct else runner
        self._shapes = {name: tuple(int(s) for s in d["shape"]) for name, d in self.input_details.items()}
        self._feeds = None
        self._results = None

    @property
    def input_names(self):
        return list(self.input_details)

    @property
    def output_names(self):
        return list(self.output_details)

    @property
    def batch_size(self):
        """Examples per run: the first input's static batch, 1 if it is dynamic."""
        first = shown_shape(next(iter(self.input_details.values())))
        return first[0] if first and first[0] is not None else 1

    def as_dict(self, x):
        """`x` as ``{input name: array}``, checking the names; an array is fine for one input."""
        names = self.input_names
        if isinstance(x, dict):
            if sorted(x) != sorted(names):
                raise expected_error(f"inputs named {names}", names=sorted(x))
            return {name: x[name] for name in names}
        if len(names) != 1:
            raise expected_error(f"a dict with keys {names} for a model with {len(names)} inputs", x=type(x).__name__)
        return {names[0]: x}

    def prepare(self, x):
        """Returns ``{name: array}`` in the interpreter's dtypes: checked, and quantized where needed."""
        return {name: _cast_input(name, value, self.input_details[name]) for name, value in self.as_dict(x).items()}

    def set_inputs(self, feeds):
        """Feeds prepared arrays, resizing dynamic dims when the shape changes."""
        if not self._direct:
            self._feeds = feeds
            return
        resized = False
        for name, value in feeds.items():
            if value.shape != self._shapes[name]:
                self.interpreter.resize_tensor_input(self.input_details[name]["index"], value.shape)
                self._shapes[name] = value.shape
                resized = True
        if resized:
            self.interpreter.allocate_tensors()
        for name, value in feeds.items():
            self.interpreter.set_tensor(self.input_details[name]["index"], value)

    def invoke(self):
        """Runs the model on the inputs last given to `set_inputs`."""
        if self._direct:
            self.interpreter.invoke()
        else:
            self._results = self._signature_runner(**self._feeds)

    def raw_outputs(self):
        """``{name: array}`` as the interpreter returned them."""
        if not self._direct:
            return dict(self._results)
        return {name: self.interpreter.get_tensor(d["index"]) for name, d in self.output_details.items()}

    def run(self, x):
        """Runs one example (the model's batch); returns ``{output name: Output}``."""
        self.set_inputs(self.prepare(x))
        self.invoke()
        outputs = {}
        for name, raw in self.raw_outputs().items():
            scale, zero_point = quantization(self.output_details[name])
            value = raw if scale is None else dequantize(raw, scale, zero_point)
            outputs[name] = Output(name, value, raw, scale, zero_point)
        return outputs

    def run_batch(self, x, max_examples=None):
        """Runs the rows of `x` (leading axis) through the model, `batch_size` at a time.

        Returns ``{output name: Output}`` whose arrays hold every row, in order.
        """
        feeds = {name: np.asarray(value) for name, value in self.as_dict(x).items()}
        rows = {name: value.shape[0] if value.ndim else None for name, value in feeds.items()}
        if None in rows.values() or len(set(rows.values())) != 1:
            raise expected_error("arrays with the same number of examples on their first axis", shapes=_shapes(feeds))
        n = next(iter(rows.values()))
        if max_examples is not None:
            n = min(n, check_int("max_examples", max_examples, minimum=1))
        if n == 0:
            raise expected_error("at least one example", shapes=_shapes(feeds))
        batch = self.batch_size
        if n % batch:
            raise expected_error(f"a number of examples divisible by the model's batch size {batch}", examples=n)
        runs = [self.run({name: v[i : i + batch] for name, v in feeds.items()}) for i in range(0, n, batch)]
        first = runs[0]
        return {
            name: dataclasses.replace(
                out,
                value=np.concatenate([r[name].value for r in runs]),
                raw=np.concatenate([r[name].raw for r in runs]),
            )
            for name, out in first.items()
        }


def _shapes(feeds):
    return {name: tuple(np.shape(value)) for name, value in feeds.items()}


def _cast_input(name, value, details):
    """One input as the interpreter's dtype, or a clear error."""
    dtype = np.dtype(details["dtype"])
    expected = shown_shape(details)
    wanted = f"input '{name}' of shape {expected} {dtype.name}"
    x = np.asarray(value)
    if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, x.shape)):
        raise expected_error(wanted, shape=x.shape)
    numeric = x.dtype.kind in "biuf"
    scale, zero_point = quantization(details)
    if scale is not None:
        if not numeric:
            raise expected_error(f"{wanted} (real numbers, quantized here)", dtype=x.dtype.name)
        return x if x.dtype == dtype else quantize(x, scale, zero_point, dtype)
    if dtype.kind == "f":
        if not numeric:
            raise expected_error(f"{wanted} (real numbers)", dtype=x.dtype.name)
        return x.astype(dtype)
    if dtype.kind in "iub":
        if x.dtype.kind not in "biu":
            raise expected_error(f"{wanted} (integer values such as token ids)", dtype=x.dtype.name)
        return x.astype(dtype)
    raise expected_error(f"input '{name}' of a numeric dtype", dtype=dtype.name)
