"""MiniLM on the shipped snippets, exported five ways: size, LiteRT latency, accuracy.

Fine-tunes all-MiniLM-L6-v2 (`BertTextClassifier`) for one epoch on the
shipped rotten-tomatoes snippets, then writes the `.tflite` rows of the
export issue, all in the same run:

- float32, float16, dynamic-range: the plain TF converter modes;
- int8 PTQ: full int8 calibrated on training snippets (what a new user of
  the TF converter gets);
- int8 QAT: `kcompress.quantization.quantize_model`, ranges calibrated,
  fine-tuned with fake quantization on the labels, converted from its own
  ranges; calibration divides the outlier channels of each block's
  feed-forward residual stream (`QuantizeTransformerEncoder`). The same
  recipe with ``QuantizationConfig(outlier_ratio=0)`` (one grid for all
  channels, the form before) is the row after it;
- int8 QAT + distillation: the same, fine-tuned by
  `kcompress.distillation.Distiller` with the float model as teacher (soft
  logits and labels), so QAT recovers the float model rather than drifting
  on new data;
- "for CPU" rows: the same two QAT models converted with
  ``float_ops=tflite_export.float_ops.FLOAT_OPS``: SOFTMAX, GELU, RSQRT and
  MAXIMUM compute in float32 between int8 tensors, because XNNPACK (LiteRT's
  CPU delegate) has float kernels for them and no int8 ones. These files are
  not full integer (not for an Edge TPU).

Latencies are measured after every file is written, in interleaved rounds
(`tflite_export.compare`), so a slow spell of a shared machine hits every
row alike.

Each row: file size, LiteRT latency (batch 1, 2 threads, median and p90),
test accuracy of the `.tflite` itself on held-out snippets, and how many
parts of the graph XNNPACK runs (each op it does not take splits the graph). Writes
``benchmarks/results/tflite_minilm.json`` and ``.md``.

Accuracy is measured on up to 2,560 held-out snippets: the test split and
then the validation split, which nothing in this script tunes on. With 1,280
(the test split alone) two runs of the same recipe differed by a point.

Run: ``python benchmarks/tflite_minilm.py [--train-size 4000] [--test-size 2560] [--seed 0]``
(about 25 minutes on 2 cores; another seed writes ``tflite_minilm_seed<N>.json``
and ``.md``). ``--quick`` is a smoke run.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _parse():
    from _minilm import parser as minilm_parser

    parser = minilm_parser(__doc__, sequence_length=64, test_size=2560)
    parser.add_argument("--qat-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning and QAT runs")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.qat_size, args.test_size, args.runs = 64, 64, 64, 5
    return args


# The QAT model without `QuantizeTransformerEncoder`'s divided outlier channels, for comparison.
ONE_GRID = "int8 QAT, one grid per residual tensor (outlier_ratio=0)"


def main():
    args = _parse()
    import keras
    import numpy as np
    from _minilm import accuracy, compile_classifier, fine_tuned_minilm, tflite_accuracy, tokens
    from _results import write_results

    import tflite_export
    from kcompress import distillation, quantization
    from kcompress.data import TextSplit, load_rotten_tomatoes
    from tflite_export._runner import xnnpack_parts
    from tflite_export.float_ops import FLOAT_OPS

    def heldout(size):
        """The test split, then the validation split (nothing here tunes on it): 2,560 snippets in all."""
        both = [load_rotten_tomatoes(name) for name in ("test", "validation")]
        texts, labels = (np.concatenate([getattr(split, field) for split in both]) for field in ("texts", "labels"))
        return TextSplit(texts[:size], labels[:size])

    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    train = load_rotten_tomatoes("train", size=args.train_size)
    qat_data = load_rotten_tomatoes("train")[-args.qat_size :]
    test = heldout(args.test_size)

    model, _ = fine_tuned_minilm(train, args.sequence_length)
    x_test = tokens(model.preprocessor, test.texts)
    calibration = {k: v[:200] for k, v in tokens(model.preprocessor, train.texts[:200]).items()}

    def calibrated_qat(config=None):
        qat = quantization.quantize_model(model, config)
        quantization.calibrate(qat, {k: v[:64] for k, v in calibration.items()})
        return qat

    print("quantization-aware fine-tuning", flush=True)
    qat = compile_classifier(calibrated_qat(), 2e-5)
    qat_started = time.perf_counter()
    qat.fit(qat_data.texts, qat_data.labels, batch_size=32, epochs=1, verbose=2)
    qat_seconds = time.perf_counter() - qat_started
    divided = sum(block.divided_channels for block in quantization.encoder_wrappers(qat))

    print("quantization-aware fine-tuning, one grid for every residual channel", flush=True)
    keras.utils.set_random_seed(args.seed)
    one_grid_qat = compile_classifier(calibrated_qat(quantization.QuantizationConfig(outlier_ratio=0)), 2e-5)
    one_grid_qat.fit(qat_data.texts, qat_data.labels, batch_size=32, epochs=1, verbose=2)

    print("quantization-aware fine-tuning, distilled from the float model", flush=True)
    distilled_qat = calibrated_qat()
    distiller = distillation.Distiller(model, distilled_qat, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(2e-5), metrics=["accuracy"])
    distilled_started = time.perf_counter()
    x_qat = tokens(model.preprocessor, qat_data.texts)
    distiller.fit(x_qat, qat_data.labels, batch_size=32, epochs=1, verbose=2)
    distilled_seconds = time.perf_counter() - distilled_started

    shapes = {k: (args.sequence_length,) for k in x_test}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plans = [
            ("float32", model, "float32", None, ()),
            ("float16", model, "float16", None, ()),
            ("dynamic", model, "dynamic", None, ()),
            ("int8 PTQ", model, "int8", calibration, ()),
            ("int8 QAT (kcompress)", qat, "int8", None, ()),
            (ONE_GRID, one_grid_qat, "int8", None, ()),
            ("int8 QAT + distillation (kcompress)", distilled_qat, "int8", None, ()),
            ("int8 QAT for CPU (kcompress)", qat, "int8", None, FLOAT_OPS),
            ("int8 QAT + distillation for CPU (kcompress)", distilled_qat, "int8", None, FLOAT_OPS),
        ]
        paths = {}
        for name, source, mode, data, float_ops in plans:
            path = paths[name] = Path(tmp) / f"{name.split()[0]}_{len(rows)}.tflite"
            convert_started = time.perf_counter()
            result = tflite_export.convert(
                source,
                path,
                mode=mode,
                representative_data=data,
                input_shapes=shapes,
                allow_float_ops=True,
                float_ops=float_ops,
            )
            convert_seconds = time.perf_counter() - convert_started
            file_accuracy = tflite_accuracy(path, x_test, test.labels, args.threads)
            rows.append(
                {
                    "model": name,
                    "size_mb": result.size_bytes / 1e6,
                    "accuracy": file_accuracy,
                    "full_integer": result.model.is_full_integer(),
                    "ops": len(result.model.ops),
                    "float_ops": result.float_ops,
                    "xnnpack_parts": len(xnnpack_parts(path, num_threads=args.threads)),
                    "convert_s": convert_seconds,
                }
            )
            if source is not model:
                # How closely the int8 file computes what its QAT model computes.
                check = tflite_export.verify(source, path, x_test, num_threads=args.threads)
                rows[-1].update(
                    agreement_with_keras=check.agreement,
                    within_one_step=check.within_one_step,
                    max_diff_in_steps=check.max_diff_in_steps,
                )
                print(f"{'':>36}  vs its Keras model: {check}", flush=True)
            print(
                f"{name:>36}: {rows[-1]['size_mb']:6.1f} MB  accuracy {file_accuracy:.3f}  "
                f"full int {rows[-1]['full_integer']}",
                flush=True,
            )
        print("LiteRT latency, interleaved rounds", flush=True)
        latencies = tflite_export.compare(paths, threads=args.threads, runs=args.runs, rounds=5, warmup=10)
        for row in rows:
            latency = latencies[row["model"]]
            row.update(median_ms=latency.median_ms, p90_ms=latency.p90_ms)
            print(f"{row['model']:>36}: {latency}", flush=True)
        op_table = tflite_export.describe(paths["int8 QAT (kcompress)"]).table()

    keras_accuracy, qat_keras_accuracy, one_grid_keras_accuracy, distilled_keras_accuracy = (
        accuracy(m, test.texts, test.labels) for m in (model, qat, one_grid_qat, distilled_qat)
    )
    base = rows[0]
    for row in rows:
        row["size_ratio"] = row["size_mb"] / base["size_mb"]
        row["latency_ratio"] = row["median_ms"] / base["median_ms"]
    lines = [
        f"MiniLM-L6-H384 fine-tuned 1 epoch on {len(train):,} snippets; QAT {len(qat_data):,} snippets; "
        f"sequence length {args.sequence_length}; batch 1; {args.threads} threads; seed {args.seed}; "
        f"accuracy of each .tflite on {len(test):,} held-out snippets (test, then validation split).",
        "",
        "| model | size (MB) | size vs float32 | median latency (ms) | p90 (ms) | latency vs float32 | "
        "latency vs dynamic | accuracy | full integer | XNNPACK parts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    dynamic_ms = next(row["median_ms"] for row in rows if row["model"] == "dynamic")
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['size_mb']:.1f} | {row['size_ratio']:.2f}x | {row['median_ms']:.2f} | "
            f"{row['p90_ms']:.2f} | {row['latency_ratio']:.2f}x | {row['median_ms'] / dynamic_ms:.2f}x | "
            f"{row['accuracy']:.3f} | {'yes' if row['full_integer'] else 'no'} | {row['xnnpack_parts']} |"
        )
    lines += [
        "",
        f"Keras accuracy: float {keras_accuracy:.3f}, QAT model {qat_keras_accuracy:.3f}, one-grid QAT model "
        f"{one_grid_keras_accuracy:.3f}, distilled QAT model {distilled_keras_accuracy:.3f}. "
        f"QAT fine-tuning took {qat_seconds:.0f} s, distilled {distilled_seconds:.0f} s. "
        f"Calibration divided {divided} of the residual stream's 6 x 384 channels (QuantizeTransformerEncoder).",
        "",
        "The int8 QAT files against their own Keras QAT models on the same snippets: "
        + "; ".join(
            f"{row['model']}: {row['agreement_with_keras']:.1%} same prediction, "
            f"{row['within_one_step']:.1%} of logits within one output step (at most {row['max_diff_in_steps']:.0f})"
            for row in rows
            if "agreement_with_keras" in row
        )
        + ".",
        "",
        "Ops of the int8 QAT model:",
        "",
        op_table,
    ]
    table = "\n".join(lines)
    print("\n" + table)
    result = {
        "seed": args.seed,
        "train_size": len(train),
        "qat_size": len(qat_data),
        "test_size": len(test),
        "sequence_length": args.sequence_length,
        "threads": args.threads,
        "keras_accuracy": keras_accuracy,
        "qat_keras_accuracy": qat_keras_accuracy,
        "one_grid_qat_keras_accuracy": one_grid_keras_accuracy,
        "divided_channels": divided,
        "qat_fit_seconds": qat_seconds,
        "distilled_qat_keras_accuracy": distilled_keras_accuracy,
        "distilled_qat_fit_seconds": distilled_seconds,
        "rows": rows,
        "total_seconds": time.perf_counter() - started,
    }
    if not args.quick:
        # Seed 0 is the canonical table; other seeds keep theirs beside it.
        write_results("tflite_minilm" if args.seed == 0 else f"tflite_minilm_seed{args.seed}", result, table)
    print(f"total {result['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
