"""MiniLM teacher -> 2-layer student: accuracy and TFLite latency with and without distillation.

The teacher is all-MiniLM-L6-v2 fine-tuned one epoch on the shipped
rotten-tomatoes snippets. The student keeps a third of its layers (2 of 6,
width 384), initialised from the fine-tuned teacher's embeddings, its first
two transformer layers, pooler and head (DistilBERT-style initialisation).
Every student row trains on the teacher's training snippets for the same
number of epochs:

- student alone: hard labels only;
- distilled, logits: `Distiller(alpha=0.5, temperature=2)`;
- distilled, all losses: the same plus hidden states, attention maps
  (uniform layer map: student layers 0, 1 learn from teacher layers 2, 5)
  and the embedding output.

Columns: Keras test accuracy, float32 and dynamic-range int8 `.tflite`
latency (LiteRT, batch 1, 2 threads) and the int8 file's own accuracy.
Target: a distilled student >= 97% of the teacher's accuracy at >= 3x lower
latency. Writes ``benchmarks/results/distill_minilm.json`` and ``.md``.

Run: ``python benchmarks/distill_minilm.py`` (about 12 minutes on 2 cores).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_ACCURACY = 0.97
TARGET_SPEEDUP = 3.0


def _parse():
    from _minilm import parser as minilm_parser

    parser = minilm_parser(__doc__, sequence_length=48)
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="student epochs (every row)")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.test_size, args.epochs, args.runs = 64, 64, 1, 5
    return args


def main():
    args = _parse()
    import keras
    from _minilm import accuracy, compile_classifier, fine_tuned_minilm, tflite_accuracy, tokens
    from _results import write_results

    import tflite_export
    from kcompress import distillation
    from kcompress.data import load_rotten_tomatoes

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    train = load_rotten_tomatoes("train", size=args.train_size)
    test = load_rotten_tomatoes("test", size=args.test_size)
    teacher, teacher_seconds = fine_tuned_minilm(train, args.sequence_length)
    x_train, y_train = tokens(teacher.preprocessor, train.texts), train.labels
    x_test, y_test = tokens(teacher.preprocessor, test.texts), test.labels
    teacher.preprocessor = None  # The rows below take token ids.

    models = {"teacher (MiniLM-L6)": (teacher, teacher_seconds)}

    print(f"student alone: {args.student_layers} layers, {args.epochs} epochs", flush=True)
    alone = compile_classifier(distillation.shallow_student(teacher, args.student_layers), 5e-5)
    fit_started = time.perf_counter()
    alone.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2)
    models["student alone"] = (alone, time.perf_counter() - fit_started)

    variants = {
        "student distilled, logits": {},
        "student distilled, logits + hidden + attention + embedding": {
            "hidden": "uniform",
            "attention": "uniform",
            "embedding": True,
        },
    }
    for name, losses in variants.items():
        print(name, flush=True)
        distiller = distillation.Distiller(
            teacher,
            distillation.shallow_student(teacher, args.student_layers),
            alpha=0.5,
            temperature=2.0,
            cache=True,
            **losses,
        )
        distiller.compile(optimizer=keras.optimizers.Adam(5e-5), metrics=["accuracy"])
        fit_started = time.perf_counter()
        distiller.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2)
        models[name] = (distiller.student, time.perf_counter() - fit_started)

    shapes = {k: (args.sequence_length,) for k in x_test}
    rows, files = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, (model, seconds)) in enumerate(models.items()):
            row = {"model": name, "parameters": int(model.count_params()), "train_s": seconds}
            row["accuracy"] = accuracy(model, x_test, y_test)
            for mode in ("float32", "dynamic"):
                path = Path(tmp) / f"{index}_{mode}.tflite"
                result = tflite_export.convert(model, path, mode=mode, input_shapes=shapes)
                row[f"{mode}_mb"] = result.size_bytes / 1e6
                files[(index, mode)] = path
            row["dynamic_accuracy"] = tflite_accuracy(path, x_test, y_test, args.threads)
            rows.append(row)
            print(f"{name}: accuracy {row['accuracy']:.3f} (int8 file {row['dynamic_accuracy']:.3f})", flush=True)
        # Every file timed in interleaved rounds: a busy spell slows all rows alike.
        latencies = tflite_export.compare(files, threads=args.threads, runs=args.runs, rounds=10, warmup=10)
        for (index, mode), latency in latencies.items():
            rows[index][f"{mode}_ms"] = latency.median_ms

    teacher_row = rows[0]
    for row in rows:
        row["accuracy_vs_teacher"] = row["accuracy"] / teacher_row["accuracy"]
        row["float32_speedup"] = teacher_row["float32_ms"] / row["float32_ms"]
        row["dynamic_speedup"] = teacher_row["dynamic_ms"] / row["dynamic_ms"]
    best = max(rows[2:], key=lambda row: row["accuracy"])
    met = best["accuracy_vs_teacher"] >= TARGET_ACCURACY and best["float32_speedup"] >= TARGET_SPEEDUP
    lines = [
        f"Teacher: MiniLM-L6-H384 fine-tuned 1 epoch on {len(y_train):,} snippets. Students: "
        f"{args.student_layers} layers x 384, initialised from the teacher, {args.epochs} epochs on the same snippets. "
        f"Sequence length {args.sequence_length}; LiteRT batch 1, {args.threads} threads; "
        f"accuracy on {len(y_test):,} test snippets.",
        "",
        "| model | params | accuracy | vs teacher | float32 ms | speedup | int8 (dynamic) ms | speedup | "
        "int8 file accuracy | int8 MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['parameters'] / 1e6:.1f}M | {row['accuracy']:.3f} | "
            f"{row['accuracy_vs_teacher'] * 100:.1f}% | {row['float32_ms']:.2f} | {row['float32_speedup']:.2f}x | "
            f"{row['dynamic_ms']:.2f} | {row['dynamic_speedup']:.2f}x | {row['dynamic_accuracy']:.3f} | "
            f"{row['dynamic_mb']:.1f} |"
        )
    lines += [
        "",
        f"Best distilled student: {best['accuracy_vs_teacher'] * 100:.1f}% of the teacher's accuracy at "
        f"{best['float32_speedup']:.2f}x lower float32 latency (target >= {TARGET_ACCURACY * 100:.0f}% at >= "
        f"{TARGET_SPEEDUP:.0f}x): {'met' if met else 'NOT met'}.",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    result = {
        "benchmark": "distill_minilm",
        "command": "python benchmarks/distill_minilm.py " + " ".join(sys.argv[1:]),
        "settings": vars(args),
        "rows": rows,
        "target_met": met,
        "total_seconds": time.perf_counter() - started,
    }
    if not args.quick:
        write_results("distill_minilm", result, table)
    print(f"total {result['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
