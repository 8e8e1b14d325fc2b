"""``kcompress export``: a `.keras` model to a `.tflite`, in any `tflite_export.MODES` mode.

Calibration data (``--calibration``, a CSV) feeds int8/int16x8
post-training quantization and, afterwards, a Keras-vs-`.tflite` check;
see `kcompress.cli._calibration` for how its columns become model inputs.
"""

import os

from kcompress.cli import _calibration, _flags, _model, _paths
from kcompress.cli._command import Command
from kcompress.cli._errors import UsageError
from kcompress.cli._output import Steps, quiet

_NEEDS_CALIBRATION = ("int16x8",)


def _define(flag_values):
    with quiet():
        from tflite_export import MODES  # Loads TensorFlow: only for this command.
        from tflite_export.float_ops import FLOAT_OPS

    _flags.define_string(flag_values, "model", None, "The Keras model to convert (.keras).")
    _flags.define_choice(flag_values, "mode", "float32", MODES, "Conversion mode (see tflite_export.convert).")
    _flags.define_string(
        flag_values,
        "calibration",
        None,
        "CSV of calibration inputs, needed for int16x8 and for int8 unless the model is quantization-aware: a "
        "'text' column for a model with a preprocessor (keras-hub), else numeric feature columns; a 'label' "
        "column is ignored. Also used to compare Keras and .tflite outputs after conversion.",
    )
    _flags.define_string(
        flag_values, "out", None, "Output .tflite path. Default: <model>_<mode>.tflite next to --model."
    )
    _flags.define_int(
        flag_values,
        "sequence-length",
        None,
        "Tokens per text for a model with inputs of variable length (keras-hub). Default: the preprocessor's "
        "sequence_length.",
        minimum=1,
    )
    _flags.define_int(flag_values, "calibration-steps", 100, "Calibration rows read from --calibration.", minimum=1)
    _flags.define_bool(flag_values, "allow-float-ops", False, "For int8: write the file even if some ops stay float.")
    _flags.define_choice_list(
        flag_values,
        "float-ops",
        FLOAT_OPS,
        "For int8: ops to compute in float32 between a DEQUANTIZE and a QUANTIZE, for phone CPUs (LiteRT's "
        "XNNPACK has float kernels for them and no int8 ones). The file is then not full integer: not for an "
        "Edge TPU.",
    )
    _flags.define_bool(
        flag_values,
        "sparse",
        False,
        "For float32: store pruned weights as sparse tensors (smaller file; LiteRT's XNNPACK runs the 1x1 "
        "convolutions of a CNN pruned with kcompress.pruning.XNNPackSparse with sparse kernels).",
    )
    _flags.define_bool(flag_values, "verify", True, "Compare Keras and .tflite outputs on the calibration rows.")


def _execute(args, positional):
    model_path = _paths.keras_file("--model", args.model, suffixes=(".keras", ".h5"))
    csv_path = _paths.existing_file("--calibration", args.calibration) if args.calibration else None
    if args.mode in _NEEDS_CALIBRATION and csv_path is None:
        raise UsageError(f"Expected --calibration=DATA.csv for --mode={args.mode}. Received: no --calibration")
    if args.float_ops and args.mode != "int8":
        raise UsageError(f"Expected --mode=int8 with --float-ops. Received: --mode={args.mode}")
    if args.sparse and args.mode != "float32":
        raise UsageError(f"Expected --mode=float32 with --sparse. Received: --mode={args.mode}")
    kind = f"{args.mode}_sparse" if args.sparse else args.mode
    out = _paths.output_file("--out", args.out or _default_out(model_path, kind))
    columns = _calibration.read_csv("--calibration", csv_path, args.calibration_steps) if csv_path else None
    verify = columns is not None and args.verify
    step = Steps(2 + (columns is not None) + verify)

    step(f"loading {model_path}")
    model = _model.load_keras_model("--model", model_path)
    from kcompress import quantization

    if args.mode == "int8" and columns is None and not quantization.quantization_wrappers(model):
        raise UsageError(
            "Expected --calibration=DATA.csv for --mode=int8 (or a quantization-aware model from "
            "kcompress.quantization.quantize_model). Received: no --calibration"
        )
    if columns is None and not _model.named_inputs(model):
        raise UsageError(
            "Expected --calibration=DATA.csv for a model without known inputs (a subclassed model): its rows give "
            f"the input shape and dtype. Received: model={model.name!r} and no --calibration"
        )
    shapes = _model.input_shapes(model, args.sequence_length)
    unknown = [name for name in _model.variable_inputs(model) if name not in (shapes or {})]
    if unknown and columns is None:
        raise UsageError(
            f"Expected --sequence-length (or --calibration to read the shapes from) for a model with inputs of "
            f"variable length. Received: {', '.join(unknown)} of unknown length"
        )
    data, rows = None, ""
    if columns is not None:
        step(f"reading calibration data from {csv_path}")
        data = _calibration.model_inputs("--calibration", model, columns)
        rows = f", calibrating on {len(next(iter(columns.values())))} rows"
    step(f"converting to {args.mode}{rows}")
    with quiet():
        import tflite_export

        result = tflite_export.convert(
            model,
            out,
            mode=args.mode,
            representative_data=data,
            calibration_steps=args.calibration_steps,
            allow_float_ops=args.allow_float_ops,
            input_shapes=shapes,
            float_ops=tuple(args.float_ops or ()),
            sparse=args.sparse,
        )
    print(str(result).splitlines()[0])  # Path, mode, size in MB, op count, full integer or not.
    print(result.model, flush=True)  # Size in bytes, inputs, outputs, op table with dtypes.
    if verify:
        step("comparing Keras and .tflite outputs")
        with quiet():
            print(tflite_export.verify(model, result.path, data), flush=True)


def _default_out(model_path, kind):
    """``m.keras`` -> ``m_int8.tflite`` (`kind` is the mode, ``float32_sparse`` with --sparse)."""
    return f"{os.path.splitext(model_path)[0]}_{kind}.tflite"


COMMAND = Command(
    name="export",
    summary="Convert a .keras model to .tflite: float, float16, dynamic-range or integer quantized.",
    description=(
        "Converts a Keras model to a .tflite file with a static batch-1 signature and prints its path, size, "
        "inputs and outputs, and a table of its ops with their dtypes. int8 needs --calibration unless the "
        "model is quantization-aware (kcompress.quantization); int16x8 always needs it, and so does a subclassed "
        "model (no known inputs): the CSV rows give its input shape. The file is written atomically: on failure "
        "no file is left behind."
    ),
    define=_define,
    execute=_execute,
    required=("model",),
    examples=(
        "kcompress export --model m.keras --mode int8 --calibration data.csv --out m.tflite",
        "kcompress export --model minilm.keras --mode dynamic --sequence-length 64",
        "kcompress export --model qat.keras --mode int8 --sequence-length 64 --float-ops SOFTMAX,GELU",
        "kcompress export --model pruned_cnn.keras --sparse",
    ),
)
