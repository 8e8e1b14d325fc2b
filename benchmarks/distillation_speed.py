"""Epoch time of distillation: kcompress with and without teacher cache vs keras.distillation.

Same teacher (all-MiniLM-L6-v2, 6 layers x 384), same student (a 2-layer,
128-wide BERT), same 512 snippets at sequence length 48, batch 32, same
losses (soft labels at T=2 and hard labels, weights 0.5/0.5):

- student alone: plain `fit` of the student (the floor);
- `keras.distillation.Distiller` with `LogitsDistillation` (Keras 3.15);
- kcompress `Distiller`, no cache: the teacher runs every step;
- kcompress `Distiller`, cache: the teacher ran once before the first
  epoch (timed separately as "cache fill");
- kcompress `Distiller`, cache, with hidden-state and attention losses too.

Epoch times are the median of epochs 2..N (epoch 1 includes tracing). The
teacher's weights do not change the timing, so the teacher is MiniLM with its
pretrained encoder and a new head (no fine-tuning). Writes
``benchmarks/results/distillation_speed.json`` and ``.md``.

Run: ``python benchmarks/distillation_speed.py [--epochs 4] [--samples 512]``.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 0.3


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.epochs = 64, 2
    if args.epochs < 2:
        parser.error(f"Expected --epochs >= 2 (the first epoch is tracing). Received: {args.epochs}")
    return args


def _student(vocabulary_size, sequence_length):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=128,
        intermediate_dim=512,
        max_sequence_length=sequence_length,
    )
    return keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)


def main():
    args = _parse()
    import keras
    from _minilm import compile_classifier, tokens
    from _overhead import EpochTimer
    from _results import write_results

    from kcompress import distillation
    from kcompress.data import load_minilm_classifier, load_rotten_tomatoes

    keras.utils.set_random_seed(0)
    data = load_rotten_tomatoes("train", size=args.samples)
    teacher = load_minilm_classifier(num_classes=2, sequence_length=args.sequence_length)
    x = tokens(teacher.preprocessor, data.texts)
    y = data.labels
    teacher = keras.Model(teacher.inputs, teacher.outputs, name="teacher")  # Without the preprocessor.
    vocabulary = int(teacher.get_layer("bert_backbone").token_embedding.input_dim)

    def timed(model, **fit_kwargs):
        timer = EpochTimer()
        model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0, callbacks=[timer], **fit_kwargs)
        return {"epoch_s": statistics.median(timer.times[1:]), "first_epoch_s": timer.times[0]}

    rows = {}
    print("student alone", flush=True)
    rows["student alone"] = timed(compile_classifier(_student(vocabulary, args.sequence_length), 1e-3))

    print("keras.distillation.Distiller", flush=True)
    keras_distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=_student(vocabulary, args.sequence_length),
        distillation_losses=keras.distillation.LogitsDistillation(temperature=2.0),
        student_loss_weight=0.5,
    )
    keras_distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rows["keras.distillation.Distiller"] = timed(keras_distiller)

    def ours(name, cache, **kwargs):
        print(name, flush=True)
        distiller = distillation.Distiller(
            teacher, _student(vocabulary, args.sequence_length), alpha=0.5, temperature=2.0, cache=cache, **kwargs
        )
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
        fill = None
        if cache:
            started = time.perf_counter()
            distiller.cache_teacher(x, batch_size=args.batch_size, verbose=0)
            fill = time.perf_counter() - started
        row = timed(distiller)
        row["cache_fill_s"] = fill
        if cache:
            row["cache_mb"] = distiller.cache.nbytes / 1e6
        rows[name] = row

    ours("kcompress, no cache", cache=None)
    ours("kcompress, cache", cache=True)
    ours(
        "kcompress, cache, + hidden + attention",
        cache=True,
        hidden="uniform",
        attention="uniform",
    )

    base = rows["keras.distillation.Distiller"]["epoch_s"]
    alone = rows["student alone"]["epoch_s"]
    for row in rows.values():
        row["vs_keras_distiller"] = row["epoch_s"] / base
        row["vs_student_alone"] = row["epoch_s"] / alone
    ratio = rows["kcompress, cache"]["vs_keras_distiller"]
    lines = [
        f"Teacher MiniLM-L6-H384, student BERT 2 x 128; {len(y)} snippets, sequence length {args.sequence_length}, "
        f"batch {args.batch_size}; median epoch of epochs 2..{args.epochs}; {os.cpu_count()} CPU cores.",
        "",
        "| run | epoch (s) | vs keras Distiller | vs student alone | cache fill (s) | cache (MB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        fill = "" if row.get("cache_fill_s") is None else f"{row['cache_fill_s']:.2f}"
        size = "" if "cache_mb" not in row else f"{row['cache_mb']:.1f}"
        lines.append(
            f"| {name} | {row['epoch_s']:.2f} | {row['vs_keras_distiller']:.2f}x | {row['vs_student_alone']:.2f}x | "
            f"{fill} | {size} |"
        )
    lines += [
        "",
        f"Cached epoch vs keras Distiller: {ratio:.2f}x (target <= {TARGET}x): "
        + ("met." if ratio <= TARGET else "NOT met."),
    ]
    table = "\n".join(lines)
    print("\n" + table)
    result = {
        "benchmark": "distillation_speed",
        "command": "python benchmarks/distillation_speed.py " + " ".join(sys.argv[1:]),
        "settings": vars(args),
        "rows": rows,
        "cached_vs_keras": ratio,
        "target": TARGET,
    }
    if not args.quick:
        write_results("distillation_speed", result, table)


if __name__ == "__main__":
    main()
