"""Training-time overhead of quantization-aware training: kcompress vs plain Keras 3 vs tfmot.

Same MLP (128 -> 512 -> 512 -> 2), data, epochs and batch size for:
plain Keras 3 `fit`; kcompress QAT `fit` (`quantization.quantize_model`,
default int8 config); tfmot QAT (`tfmot.quantization.keras.quantize_model`)
of an identical tf_keras model, run in a subprocess because importing tfmot
switches a process to legacy Keras. Each framework's ratio is to its own
plain `fit` measured in the same run (tfmot's to plain tf_keras), and the
steady-state epoch time (median of epochs after the first, which includes
tracing) is compared. On each side a repeat fits a fresh plain model and a
fresh QAT one one epoch each in turn; the ratio is the median of those
back-to-back epoch pairs over all repeats, with its range. Final training
accuracy and loss are recorded (tfmot's baseline reports accuracy only),
and the kcompress QAT model of the last repeat is converted to an int8 `.tflite`
whose size and agreement with Keras (`tflite_export.verify` on 512 training
samples) are recorded.

Usage:
    python benchmarks/qat_overhead.py [--epochs 8] [--repeats 3]

Writes benchmarks/results/qat_overhead.json and .md.
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from _mlp_task import make_data  # noqa: E402
from _overhead import (  # noqa: E402
    alternating_fits,
    build_mlp,
    compile_mlp,
    overhead_table,
    parse_args,
    run_header,
    target_line,
)
from _results import write_results  # noqa: E402
from _subprocess import run_tfmot_baselines  # noqa: E402

import tflite_export  # noqa: E402
from kcompress import quantization  # noqa: E402

TARGET = 1.10
VERIFY_SAMPLES = 512


def pair(x, y, args, repeat):
    """A fresh plain MLP and a QAT one, fit one epoch each in turn: ``({"plain": row, "qat": row}, QAT model)``."""
    keras.utils.set_random_seed(args.seed + repeat)
    plain = compile_mlp(build_mlp())
    keras.utils.set_random_seed(args.seed + repeat)
    qat = compile_mlp(quantization.quantize_model(build_mlp()))
    rows = alternating_fits({"plain": (plain, []), "qat": (qat, [])}, x, y, args.epochs, args.batch_size)
    rows["plain"]["framework"], rows["qat"]["framework"] = "keras3", "kcompress"
    return rows, qat


def export_int8(qat, x):
    """Converts the QAT model to int8 `.tflite` and verifies it against Keras."""
    with tempfile.TemporaryDirectory() as tmp:
        conversion = tflite_export.convert(qat, os.path.join(tmp, "qat_int8.tflite"), mode="int8")
        check = tflite_export.verify(qat, conversion.path, x[:VERIFY_SAMPLES])
    return {
        "int8_size_bytes": conversion.size_bytes,
        "full_integer": conversion.model.is_full_integer(),
        "float32_weight_bytes": 4 * build_mlp().count_params(),
        "verify_examples": check.examples,
        "agreement": check.agreement,
        "within_one_step": check.within_one_step,
        "max_diff_in_steps": check.max_diff_in_steps,
    }


def main():
    args = parse_args(__doc__, epochs=8, repeats=3)
    x, y = make_data(args.samples, args.seed)
    pairs = [pair(x, y, args, repeat) for repeat in range(args.repeats)]
    ours = {name: [rows[name] for rows, _ in pairs] for name in ("plain", "qat")}
    export = export_int8(pairs[-1][1], x)
    print(
        f"int8 .tflite: {export['int8_size_bytes']} bytes, agreement {export['agreement']:.4f}, "
        f"within one step {export['within_one_step']:.4f}",
        flush=True,
    )
    tfmot = run_tfmot_baselines(args, ("plain", "qat"))
    result = {
        **run_header("qat_overhead", args, ours, tfmot, "qat", TARGET),
        "kcompress_int8_export": export,
        "runs": {"kcompress": ours, "tfmot": tfmot},
    }
    names = {
        ("keras3", "plain"): "plain Keras 3 fit",
        ("keras3", "qat"): "kcompress QAT fit",
        ("tfmot", "plain"): "plain tf_keras fit",
        ("tfmot", "qat"): "tfmot QAT fit (tf_keras)",
    }
    columns = [
        ("final accuracy", lambda row: f"{row['final_accuracy']:.4f}"),
        ("final loss", lambda row: "n/a" if row.get("final_loss") is None else f"{row['final_loss']:.4f}"),
    ]
    lines = [
        overhead_table(ours, tfmot, "qat", names, columns),
        "",
        target_line(args, result),
        "",
        f"kcompress QAT -> int8 .tflite: {export['int8_size_bytes'] / 1e3:.1f} kB "
        f"(float32 weights {export['float32_weight_bytes'] / 1e3:.1f} kB), full integer: "
        f"{export['full_integer']}; verify on {export['verify_examples']} samples: "
        f"agreement {export['agreement']:.2%}, within one step {export['within_one_step']:.2%}, "
        f"max diff {export['max_diff_in_steps']:.2f} steps",
    ]
    table = "\n".join(lines)
    print(table)
    write_results("qat_overhead", result, table)


if __name__ == "__main__":
    main()
