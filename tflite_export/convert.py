"""`convert`: a Keras model to a `.tflite`, in one of five numeric modes."""

import dataclasses
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kcompress import quantization
from kcompress._errors import check_int, expected_error
from kcompress._float32 import float32_copy
from tflite_export import _files, _representative, _saved_model
from tflite_export import _signature as _signatures
from tflite_export.float_ops import check_float_ops, run_in_float
from tflite_export.inspect import describe

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What `convert` wrote.

    Attributes:
        path: The `.tflite` file.
        mode: The conversion mode.
        size_bytes: File size.
        quantization_aware: Whether the int8 ranges came from a
            quantization-aware (kcompress.quantization) model.
        model: The written graph described (`tflite_export.inspect.TFLiteModel`):
            inputs, outputs, ops and dtypes.
        float_ops: How many ops of each name `convert(float_ops=...)`
            moved to float32 between a DEQUANTIZE and a QUANTIZE (empty
            for a full-int8 file).
        sparse: Whether the converter was asked to store sparse weights
            (`convert(sparse=True)`); the DENSIFY ops in `model` show which it did.
    """

    path: str
    mode: str
    size_bytes: int
    quantization_aware: bool
    model: object = dataclasses.field(repr=False)
    float_ops: dict = dataclasses.field(default_factory=dict)
    sparse: bool = False

    def __str__(self):
        counts = ", ".join(f"{name} x{n}" for name, n in self.model.op_counts().most_common())
        if self.float_ops:
            kind = "int8, float32 " + ", ".join(f"{name} x{n}" for name, n in sorted(self.float_ops.items()))
        else:
            kind = "full integer" if self.model.is_full_integer() else "has float tensors"
        return (
            f"{self.path}: {self.mode}{' sparse' if self.sparse else ''}, {self.size_bytes / 1e6:.2f} MB, "
            f"{len(self.model.ops)} ops ({kind})\n"
            f"ops: {counts}"
        )


def _signature(template, batch_size, example, input_shapes=None):
    """Static `tf.TensorSpec`s (a spec, a list or a dict of them) from the `template` `_template` returns."""

    def spec(name, tensor, sample):
        shape = [batch_size] + list(tensor.shape[1:])
        given = input_shapes.get(name) if isinstance(input_shapes, dict) else input_shapes
        if given is not None:
            given = tuple(given)
            if len(given) != len(shape) - 1 or any(d is not None and d != g for d, g in zip(shape[1:], given)):
                raise expected_error(
                    f"input_shapes for '{name}' compatible with {tuple(tensor.shape[1:])} (no batch axis)",
                    input_shapes=input_shapes,
                )
            shape = [batch_size] + list(given)
        if any(d is None for d in shape[1:]):
            if sample is None:
                raise expected_error(
                    "static input shapes: pass input_shapes or representative_data to read them from",
                    **{name: tuple(tensor.shape)},
                )
            shape = [batch_size] + list(np.shape(sample)[1:])
        return tf.TensorSpec(shape, tf.as_dtype(keras.backend.standardize_dtype(tensor.dtype)), name=name)

    inputs = template
    if isinstance(inputs, dict):
        sample = example if isinstance(example, dict) else {}
        return {name: spec(name, tensor, sample.get(name)) for name, tensor in inputs.items()}
    inputs = inputs if isinstance(inputs, list) else [inputs]
    samples = example if isinstance(example, (list, tuple)) else [example] * len(inputs)
    default = ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]
    names = [getattr(t, "name", None) or default[i] for i, t in enumerate(inputs)]
    specs = [spec(n, t, s) for n, t, s in zip(names, inputs, samples)]
    return specs[0] if len(specs) == 1 else specs


def _template(model, input_signature, example, batch_size):
    """What the signature is made from: `input_signature`, else the model inputs, else one batch of data."""
    if input_signature is not None:
        template = _signatures.checked(input_signature)
        for spec in tf.nest.flatten(template):
            if spec.shape.rank is None or spec.shape.rank == 0 or spec.shape[0] not in (None, batch_size):
                raise expected_error(
                    f"input_signature specs with a batch axis of None or batch_size={batch_size}",
                    input_signature=input_signature,
                )
        if isinstance(template, dict):  # Named by their keys, as the model reads them.
            template = {key: tf.TensorSpec(s.shape, s.dtype, name=key) for key, s in template.items()}
        return template
    template = _signatures.model_inputs(model)
    if template is not None:
        return template
    if example is None:
        raise _signatures.missing_error(model, "representative_data")
    return _signatures.from_data(example, None)


def convert(
    model,
    path,
    mode="float32",
    representative_data=None,
    batch_size=1,
    calibration_steps=100,
    allow_float_ops=False,
    input_shapes=None,
    float_ops=(),
    input_signature=None,
    sparse=False,
):
    """Converts a Keras model to a `.tflite` file and describes the result.

    Modes:

    - ``float32``: no quantization.
    - ``float16``: float16 weights (half the size; runs in float).
    - ``dynamic``: int8 weights, float activations (dynamic-range).
    - ``int8``: full integer: int8 weights and activations, int8 float
      inputs/outputs (integer inputs such as token ids stay int32). Ranges
      come from a quantization-aware model (`kcompress.quantization`)
      and/or from `representative_data` (post-training quantization).
    - ``int16x8``: int16 activations, int8 weights (needs
      `representative_data`).

    The signature is static (batch `batch_size`, fixed sequence length),
    as phones and the Edge TPU need; unknown dimensions (a keras-hub
    model's sequence length) are read from `representative_data`. It is
    taken from `input_signature` if given, else from the model's inputs,
    else (a subclassed model has none) from the shapes and dtypes of the
    first batch of `representative_data`. The graph is
    ``model(inputs, training=False)`` with `inputs` structured like the
    signature (a tensor, a list or a dict). The file is written
    atomically: on any error no file is left behind.

    Args:
        model: A Keras 3 model: Sequential, functional, keras-hub (dict
            inputs), subclassed (called once, so built), or one returned by
            `kcompress.quantization.quantize_model`.
        path: Output `.tflite` path; its directory must exist.
        mode: One of `MODES`.
        representative_data: Inputs for calibration and for static shapes:
            an array, a dict of arrays, a list of arrays (one per input, for
            a model with several inputs), ``(x, y)``, or a `tf.data.Dataset`.
        batch_size: Static batch size of the signature.
        calibration_steps: Batches of `representative_data` to calibrate on.
        allow_float_ops: For ``int8``, write the file even if some ops
            stay float (otherwise that is an error naming the first op that
            computes in float, not the QUANTIZE / DEQUANTIZE around it).
        input_shapes: Shapes (without the batch axis) for inputs whose
            Keras shape has unknown dimensions: a tuple, or a dict by input
            name, e.g. ``{"token_ids": (64,), "segment_ids": (64,),
            "padding_mask": (64,)}``.
        float_ops: For ``int8``, op names among
            `tflite_export.float_ops.FLOAT_OPS` (``"SOFTMAX"``, ``"GELU"``,
            ``"RSQRT"``) to compute in float32 between a DEQUANTIZE and a
            QUANTIZE, for CPUs: XNNPACK has float kernels for them and no
            int8 ones, so a transformer runs faster on LiteRT's CPU path
            with the same int8 tensors around them. The file is then not
            full integer (not for an Edge TPU). The full-int8 check runs
            before this rewrite.
        input_signature: The inputs, as ``model.export(input_signature=...)``
            takes them: a `tf.TensorSpec` or `keras.InputSpec`, or a list
            (several inputs) or dict (named inputs) of them, e.g.
            ``tf.TensorSpec((None, 16), tf.float32)``. The batch axis is
            `batch_size` (given as `None` or as `batch_size`); other unknown
            dimensions come from `input_shapes` or `representative_data`.
            Default: the model's inputs, else `representative_data`.
        sparse: For ``float32``, store pruned weights as sparse tensors
            (``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``; each is read by a
            DENSIFY op). The file is smaller, and LiteRT's CPU delegate
            (XNNPACK) runs the 1x1 convolutions of a CNN pruned with
            `kcompress.pruning.XNNPackSparse` with its sparse kernels (on
            ARM and on x86 without AVX; see ``docs/xnnpack_sparse.md``).

    Returns:
        A `Conversion`.

    Example:

    >>> import tempfile, os
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> out = os.path.join(tempfile.mkdtemp(), "m.tflite")
    >>> result = convert(model, out, mode="dynamic")
    >>> result.mode, result.model.inputs[0].shape
    ('dynamic', (1, 4))
    """
    if mode not in MODES:
        raise expected_error(f"mode in {MODES}", mode=mode)
    if not isinstance(model, keras.Model):
        raise expected_error("a keras.Model", model=model)
    path = _files.output_path(path)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    calibration_steps = check_int("calibration_steps", calibration_steps, minimum=1)
    float_ops = check_float_ops(float_ops)
    if float_ops and mode != "int8":
        raise expected_error("float_ops only with mode='int8'", mode=mode, float_ops=float_ops)
    if not isinstance(sparse, bool):
        raise expected_error("sparse to be True or False", sparse=sparse)
    if sparse and mode != "float32":
        raise expected_error(
            "sparse=True only with mode='float32' (XNNPACK's sparse kernels compute in float)", mode=mode
        )
    aware = bool(quantization.quantization_wrappers(model))
    if mode in ("int16x8",) and representative_data is None:
        raise expected_error("representative_data for mode='int16x8'", representative_data=None)
    if mode == "int8" and representative_data is None and not aware:
        raise expected_error(
            "representative_data for mode='int8' (or a model from kcompress.quantization.quantize_model)",
            representative_data=None,
        )
    if aware and mode != "int8":
        # Float modes of a quantization-aware model: its int8-rounded weights, no fake-quant ops.
        model, aware = quantization.strip_quantization(model), False

    several = _signatures.several_inputs(model, input_signature)
    examples = _representative.batches(representative_data, batch_size, calibration_steps, several)
    if representative_data is not None and not examples:
        raise expected_error(
            f"representative_data with at least batch_size={batch_size} rows",
            representative_data=type(representative_data).__name__,
        )
    example = examples[0] if examples else None
    template = _template(model, input_signature, example, batch_size)
    signature = _signature(template, batch_size, example, input_shapes)
    examples = [_representative.fitted(signature, e) for e in examples]

    model = float32_copy(model)  # Trained under mixed precision: the converter reads float32 ops.
    with tempfile.TemporaryDirectory() as tmp, quantization.quantizers.exporting():
        _saved_model.write(model, signature, tmp)
        with _saved_model.without_gradient_warnings():
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            _configure(converter, mode, signature, examples, sparse)
            flatbuffer = converter.convert()
    described = describe(flatbuffer)
    if mode == "int8" and not allow_float_ops and not described.is_full_integer():
        op = _first_float_op(described)
        raise ValueError(
            f"Expected a model that converts to full int8. Received: op {op.index} ({op.name}) runs on float "
            f"tensors{_float_tensor(op)}{'' if examples else ' and no representative_data was given to calibrate it'}"
            ". Quantize the layer that produces it (see kcompress.quantization.registry), pass representative_data, "
            "or pass allow_float_ops=True to keep it float."
        )
    moved = {}
    if float_ops:
        flatbuffer, moved = run_in_float(flatbuffer, float_ops)
        described = describe(flatbuffer)
    size = _files.write_bytes_atomic(path, flatbuffer)
    return Conversion(str(path), mode, size, aware, described, moved, sparse)


def _first_float_op(described):
    """The op to name when an int8 conversion is not full integer: the first one computing in float.

    Around an op it cannot run in int8 the converter puts a DEQUANTIZE (int8 ->
    float) before and a QUANTIZE (float -> int8) after: they touch float tensors
    only to feed that op, so they are skipped. If they are all there is (float
    model inputs or outputs), the first of them is named.

    Example:

    >>> from tflite_export.inspect import OpInfo, TensorInfo, TFLiteModel
    >>> def t(name, dtype):
    ...     return TensorInfo(0, name, (1, 8), (1, 8), dtype)
    >>> ops = (
    ...     OpInfo(0, "DEQUANTIZE", (t("dense", "int8"),), (t("dense_float", "float32"),)),
    ...     OpInfo(1, "CUMSUM", (t("dense_float", "float32"), t("axis", "int32")), (t("cumsum", "float32"),)),
    ...     OpInfo(2, "QUANTIZE", (t("cumsum", "float32"),), (t("cumsum_int8", "int8"),)),
    ... )
    >>> op = _first_float_op(TFLiteModel(0, (), (), ops))
    >>> op.index, op.name, _float_tensor(op)
    (1, 'CUMSUM', " (float32 output 'cumsum')")
    """
    float_ops = described.float_ops()
    computing = [op for op in float_ops if op.name not in ("QUANTIZE", "DEQUANTIZE")]
    return (computing or float_ops)[0]


def _float_tensor(op):
    """`` (<dtype> output '<name>')`` for the op's first float output (else input); names cut at the first ';'."""
    for role, tensors in (("output", op.outputs), ("input", op.inputs)):
        for tensor in tensors:
            if tensor.is_float:
                return f" ({tensor.dtype} {role} '{tensor.name.split(';')[0]}')"
    return ""


def _configure(converter, mode, signature, examples, sparse=False):
    if mode == "float32":
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if mode == "dynamic":
        return
    if examples:

        def dataset():
            yield from examples

        converter.representative_dataset = dataset
    specs = (
        signature.values() if isinstance(signature, dict) else signature if isinstance(signature, list) else [signature]
    )
    float_io = all(spec.dtype.is_floating for spec in specs)
    if mode == "int8":
        if examples:  # Without data the converter runs on the fake-quant ranges alone.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if float_io:
            converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if float_io:
            converter.inference_input_type = tf.int16
        converter.inference_output_type = tf.int16
