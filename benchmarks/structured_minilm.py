"""MiniLM with structured pruning: parameters, .tflite size (raw and gzipped), LiteRT latency, accuracy.

Fine-tunes all-MiniLM-L6-v2 (`BertTextClassifier`) for one epoch on the
shipped rotten-tomatoes snippets (`_minilm.fine_tuned_minilm`, as `tflite_minilm.py` does), then makes
each row of the structured-pruning issue from that model and fine-tunes it
for the same number of steps on the same further snippets:

- dense: the fine-tuned model, fine-tuned further (same steps as the others;
  done last, in place, since the other rows are made from it);
- unstructured 50%: `kcompress.pruning` magnitude pruning of every encoder
  kernel (ConstantSparsity 0.5), stripped (for contrast: zeros do not make
  the .tflite faster, only more compressible);
- heads 50%, FFN 50%, heads+FFN 50%: `kcompress.structured.prune_transformer`
  with first-order Taylor importance on a few batches of the fine-tuning
  snippets (the layers physically lose half their heads / FFN units);
- heads+FFN 50%, distilled: the same pruned model, its fine-tuning steps
  distilled from the dense model (`kcompress.distillation.Distiller`, soft
  labels + hidden states, teacher cache);
- clustered 16: `kcompress.clustering.cluster_transformer`, 16 shared values
  per encoder and embedding kernel, fine-tuned, stripped (smaller gzipped
  files, same latency).

For each row: parameters (and non-zero parameters), float32 and int8
(dynamic-range: int8 weights) `.tflite` sizes raw and gzipped, LiteRT
median latency (batch 1, 2 threads; all files timed at the end in interleaved
rounds) and test accuracy of each `.tflite`.
Writes ``benchmarks/results/structured_minilm.json``, ``.md`` and ``.png``.
Target: heads+FFN 50% at <= 0.55x the dense float32 latency with <= 1.5
points accuracy drop.

Run: ``python benchmarks/structured_minilm.py [--train-size 4000] [--tune-size 3000]``
(roughly 15-20 minutes on 2 cores). ``--quick`` is a smoke run that writes nothing.
"""

import dataclasses
import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_LATENCY_RATIO = 0.55
TARGET_ACCURACY_DROP = 0.015


def _parse():
    from _minilm import parser as minilm_parser

    parser = minilm_parser(__doc__, sequence_length=64)
    parser.add_argument("--tune-size", type=int, default=3000, help="snippets for every row's fine-tuning")
    parser.add_argument("--learning-rate", type=float, default=5e-5, help="fine-tuning after pruning")
    parser.add_argument("--importance-batches", type=int, default=8, help="batches of 32 for Taylor scores")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.tune_size, args.test_size, args.runs = 64, 64, 64, 5
        args.sequence_length, args.importance_batches = 32, 2
    return args


@dataclasses.dataclass(frozen=True)
class Context:
    """What every row needs: the fine-tuning snippets, Taylor scores, settings."""

    tune: object
    importance: object
    learning_rate: float
    tune_tokens: dict


def _fine_tune(model, context, callbacks=()):
    from _minilm import compile_classifier

    compile_classifier(model, context.learning_rate)
    model.fit(context.tune.texts, context.tune.labels, batch_size=32, epochs=1, verbose=2, callbacks=list(callbacks))
    return model


def _dense(model, context):
    return _fine_tune(model, context)  # In place: main() makes this row last, after the others copied `model`.


def _unstructured(model, context):
    from kcompress import pruning

    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=pruning.ConstantSparsity(0.5, frequency=10))
    _fine_tune(pruned, context, callbacks=[pruning.UpdatePruningStep()])
    return pruning.strip_pruning(pruned)


def _structured(**targets):
    def make(model, context):
        from kcompress import structured

        return _fine_tune(structured.prune_transformer(model, importance=context.importance, **targets), context)

    return make


def _structured_distilled(**targets):
    """Pruned as `_structured`, but fine-tuned by distillation from the dense model (same steps)."""

    def make(model, context):
        import keras

        from kcompress import distillation, structured

        pruned = structured.prune_transformer(model, importance=context.importance, **targets)
        distiller = distillation.Distiller(model, pruned, alpha=0.5, temperature=2.0, hidden="uniform", cache=True)
        distiller.compile(optimizer=keras.optimizers.Adam(context.learning_rate), metrics=["accuracy"])
        x = context.tune_tokens
        distiller.fit(x, context.tune.labels, batch_size=32, epochs=1, verbose=2)
        model.trainable = True  # The Distiller froze its teacher; the dense row fine-tunes it last.
        return distiller.student

    return make


def _clustered(model, context):
    from kcompress import clustering

    # Encoder and embedding kernels share 16 values each: the gzipped file shrinks, the latency does not.
    return clustering.cluster_transformer(
        model, 16, include_embeddings=True, fine_tune=lambda clustered: _fine_tune(clustered, context)
    )


# One row per entry: name -> (fine-tuned dense model, Context) -> compressed, fine-tuned model. Rows other
# than "dense" must not change the model they get (every transformation here returns a copy).
ROWS = {
    "dense": _dense,
    "unstructured 50%": _unstructured,
    "heads 50%": _structured(heads=0.5),
    "FFN 50%": _structured(ffn=0.5),
    "heads+FFN 50%": _structured(heads=0.5, ffn=0.5),
    "heads+FFN 50%, distilled": _structured_distilled(heads=0.5, ffn=0.5),
    "clustered 16": _clustered,
}


def _nonzero(model):
    import numpy as np

    return int(sum(np.count_nonzero(np.asarray(w)) for w in model.get_weights()))


def _measure(name, model, x_test, labels, args, folder):
    """Sizes, latency and accuracy of the float32 and int8 (dynamic-range) .tflite of `model`."""
    from _minilm import tflite_accuracy

    import tflite_export

    row = {"model": name, "parameters": model.count_params(), "nonzero_parameters": _nonzero(model)}
    shapes = {k: (args.sequence_length,) for k in x_test}
    for label, mode in (("float", "float32"), ("int8", "dynamic")):
        path = Path(folder) / f"{name.replace(' ', '_').replace('%', '').replace('+', '_')}_{mode}.tflite"
        result = tflite_export.convert(model, path, mode=mode, input_shapes=shapes)
        row[f"{label}_size_mb"] = result.size_bytes / 1e6
        row[f"{label}_gzip_mb"] = len(gzip.compress(path.read_bytes(), compresslevel=9)) / 1e6
        row[f"{label}_accuracy"] = tflite_accuracy(path, x_test, labels, args.threads)
        row[f"{label}_path"] = str(path)  # Timed with every other file at the end (`_time_all`).
    print(
        f"{name:>18}: {row['parameters']:,} parameters, float {row['float_size_mb']:.1f} MB "
        f"({row['float_gzip_mb']:.1f} gz) acc {row['float_accuracy']:.3f}; "
        f"int8 {row['int8_size_mb']:.1f} MB ({row['int8_gzip_mb']:.1f} gz) acc {row['int8_accuracy']:.3f}",
        flush=True,
    )
    return row


def _time_all(rows, args):
    """Every row's files timed in interleaved rounds: a busy spell of the machine slows all rows alike."""
    import tflite_export

    files = {(index, label): row.pop(f"{label}_path") for index, row in enumerate(rows) for label in ("float", "int8")}
    latencies = tflite_export.compare(files, threads=args.threads, runs=args.runs, rounds=10, warmup=10)
    for (index, label), latency in latencies.items():
        rows[index][f"{label}_median_ms"] = latency.median_ms
        rows[index][f"{label}_p90_ms"] = latency.p90_ms


def _table(rows, header):
    base = rows[0]
    lines = [
        header,
        "",
        "| model | parameters | non-zero | float32 MB (gzip) | int8 MB (gzip) | float32 ms | vs dense | int8 ms | "
        "float32 acc | int8 acc | drop (pt) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['parameters'] / 1e6:.2f}M | {row['nonzero_parameters'] / 1e6:.2f}M | "
            f"{row['float_size_mb']:.1f} ({row['float_gzip_mb']:.1f}) | {row['int8_size_mb']:.1f} "
            f"({row['int8_gzip_mb']:.1f}) | {row['float_median_ms']:.2f} | {row['latency_ratio']:.2f}x | "
            f"{row['int8_median_ms']:.2f} | {row['float_accuracy']:.3f} | {row['int8_accuracy']:.3f} | "
            f"{100 * (base['float_accuracy'] - row['float_accuracy']):+.1f} |"
        )
    return "\n".join(lines)


def _plot(rows, path):
    """Latency vs accuracy, and sizes, as a PNG written atomically."""
    import io

    import matplotlib

    from kcompress._atomic import write_atomic

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    base = rows[0]
    for row in rows:
        left.scatter(row["latency_ratio"], 100 * row["float_accuracy"], s=40)
        left.annotate(
            row["model"],
            (row["latency_ratio"], 100 * row["float_accuracy"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    left.axvline(TARGET_LATENCY_RATIO, color="grey", linestyle="--", linewidth=1)
    left.axhline(100 * (base["float_accuracy"] - TARGET_ACCURACY_DROP), color="grey", linestyle="--", linewidth=1)
    left.set_xlabel("float32 .tflite latency vs dense")
    left.set_ylabel("test accuracy (%)")
    left.set_title("latency vs accuracy (target: lower-right of the dashed lines is out)")
    left.grid(alpha=0.3)
    names = [row["model"] for row in rows]
    positions = range(len(rows))
    width = 0.2
    for offset, key in enumerate(("float_size_mb", "float_gzip_mb", "int8_size_mb", "int8_gzip_mb")):
        right.bar([p + (offset - 1.5) * width for p in positions], [row[key] for row in rows], width, label=key)
    right.set_xticks(list(positions), names, rotation=20, fontsize=8)
    right.set_ylabel("MB")
    right.set_title(".tflite size")
    right.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
    print(f"wrote {path}")


def main():
    args = _parse()
    import keras
    import numpy as np
    from _minilm import fine_tuned_minilm, tokens
    from _results import RESULTS, write_results

    from kcompress import structured
    from kcompress.data import load_rotten_tomatoes

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    train = load_rotten_tomatoes("train", size=args.train_size)
    tune = load_rotten_tomatoes("train")[args.train_size : args.train_size + args.tune_size]
    test = load_rotten_tomatoes("test", size=args.test_size)

    model, dense_seconds = fine_tuned_minilm(train, args.sequence_length)
    x_test = tokens(model.preprocessor, test.texts)
    labels = np.asarray(test.labels)

    rows_needed = args.importance_batches * 32
    x_importance = tokens(model.preprocessor, tune.texts[:rows_needed])
    importance_started = time.perf_counter()
    importance = structured.importance_scores(
        model, (x_importance, np.asarray(tune.labels[:rows_needed])), batches=args.importance_batches
    )
    importance_seconds = time.perf_counter() - importance_started
    print(f"Taylor importance on {importance.examples} snippets: {importance_seconds:.1f} s", flush=True)
    context = Context(
        tune=tune,
        importance=importance,
        learning_rate=args.learning_rate,
        tune_tokens=tokens(model.preprocessor, tune.texts),
    )

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in sorted(ROWS, key=lambda name: name == "dense"):  # dense last: it fine-tunes `model` itself
            make = ROWS[name]
            print(f"\n== {name}", flush=True)
            row_started = time.perf_counter()
            compressed = make(model, context)
            fine_tune_seconds = time.perf_counter() - row_started
            row = _measure(name, compressed, x_test, labels, args, folder)
            row["fine_tune_seconds"] = fine_tune_seconds
            if hasattr(compressed.backbone, "key_dim"):
                row["num_heads"] = list(compressed.backbone.num_heads)
                row["intermediate_dim"] = list(compressed.backbone.intermediate_dim)
            rows.append(row)
        _time_all(rows, args)
    rows.sort(key=lambda row: list(ROWS).index(row["model"]))
    base = rows[0]
    for row in rows:
        row["latency_ratio"] = row["float_median_ms"] / base["float_median_ms"]
        row["int8_latency_ratio"] = row["int8_median_ms"] / base["float_median_ms"]
        row["accuracy_drop"] = base["float_accuracy"] - row["float_accuracy"]
    both = next(row for row in rows if row["model"] == "heads+FFN 50%")
    met = both["latency_ratio"] <= TARGET_LATENCY_RATIO and both["accuracy_drop"] <= TARGET_ACCURACY_DROP
    header = (
        f"MiniLM-L6-H384 fine-tuned 1 epoch on {len(train):,} snippets, then every row fine-tuned 1 epoch on "
        f"{len(tune):,} more (Adam {args.learning_rate:g}, batch 32); structured rows use Taylor importance on "
        f"{importance.examples} snippets. Sequence length {args.sequence_length}, batch 1, {args.threads} threads, "
        f"{args.runs} timed runs; accuracy of each .tflite on {len(test):,} test snippets. int8 = dynamic-range "
        f"(int8 weights). Target heads+FFN 50%: <= {TARGET_LATENCY_RATIO}x latency, <= "
        f"{100 * TARGET_ACCURACY_DROP:.1f} pt drop: {'met' if met else 'NOT met'} "
        f"({both['latency_ratio']:.2f}x, {100 * both['accuracy_drop']:+.1f} pt)."
    )
    table = _table(rows, header)
    print("\n" + table)
    result = {
        "train_size": len(train),
        "tune_size": len(tune),
        "test_size": len(test),
        "sequence_length": args.sequence_length,
        "learning_rate": args.learning_rate,
        "threads": args.threads,
        "runs": args.runs,
        "dense_fine_tune_seconds": dense_seconds,
        "importance_examples": importance.examples,
        "importance_seconds": importance_seconds,
        "target_met": met,
        "rows": rows,
        "total_seconds": time.perf_counter() - started,
    }
    if not args.quick:
        write_results("structured_minilm", result, table)
        _plot(rows, RESULTS / "structured_minilm.png")
    print(f"total {result['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
