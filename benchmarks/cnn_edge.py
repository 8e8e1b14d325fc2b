"""MobileNetV2 on the shipped MNIST digits, compressed for the edge: size, LiteRT latency, accuracy, Edge TPU ops.

One float MobileNetV2 (alpha 0.35, 96x96x3, 10 classes, random init,
``Rescaling(1 / 127.5, offset=-1)`` inside, so every file takes raw [0, 255]
pixels) is trained on the 4,000 training digits of `kcompress.data.load_mnist`
and exported as float32, dynamic-range and int8 post-training quantization;
kcompress's `quantize_model` and tfmot's (on a tf_keras twin with the same
weights, in a child process: `_cnn_edge_tfmot.py`) fine-tune it for the same
epochs before their int8 export. For sparsity the XNNPACK-ready MobileNetV2
(`sparse_latency.xnnpack_ready_mobilenet_v2`: ``ZeroPadding2D(1)`` + ``"valid"``
before every stride-2 convolution; inputs scaled to [-1, 1] outside the file,
logits out) is trained the same way, then pruned to 75% by
`pruning.XNNPackSparse` and by tfmot's ``PruneForLatencyOnXNNPack`` (same
schedule, same epochs) and written as sparse float32 files.

Every file is timed by `tflite_export.compare` (batch 1, interleaved rounds)
and scored on the 500 test digits; `tflite_export.check_edgetpu` counts its
Edge-TPU-mappable ops. The float32 and sparse files are also timed under
``qemu-x86_64 -cpu Nehalem`` (`sparse_latency.emulated_times`): this CPU has
AVX, where XNNPACK keeps its dense kernels. With ``--seeds N`` everything is
trained N times (seeds 0..N-1) and accuracies are mean +- std; sizes,
latencies and ops are those of seed 0.

Run: ``python benchmarks/cnn_edge.py [--epochs 10] [--qat-epochs 2] [--prune-epochs 3] [--seeds 1]``
(``--quick``: 32x32 images, few of them, one epoch each: a smoke run that
prints the table and writes nothing). Writes ``benchmarks/results/cnn_edge.json`` and ``.md``.
"""

import argparse
import gzip
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# (key, row label, model the file comes from, sparse float file).
ROWS = (
    ("float32", "float32", "mobilenet_v2", False),
    ("dynamic", "dynamic-range", "mobilenet_v2", False),
    ("int8_ptq", "int8 PTQ", "mobilenet_v2", False),
    ("qat_kcompress", "int8 QAT, kcompress", "mobilenet_v2", False),
    ("qat_tfmot", "int8 QAT, tfmot", "mobilenet_v2", False),
    ("xnnpack_float32", "float32, XNNPACK-ready variant (dense, before pruning)", "xnnpack_ready", False),
    ("pruned_kcompress", "pruned 75% sparse float32, kcompress XNNPackSparse", "xnnpack_ready", True),
    ("pruned_tfmot", "pruned 75% sparse float32, tfmot PruneForLatencyOnXNNPack", "xnnpack_ready", True),
)
INT8_ROWS = ("int8_ptq", "qat_kcompress", "qat_tfmot")
EMULATED_ROWS = ("float32", "xnnpack_float32", "pruned_kcompress", "pruned_tfmot")


def parse_args(argv=None):
    """Parses the command line; ``--quick`` shrinks everything not given explicitly."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 32x32, 256 images, 1 epoch each")
    parser.add_argument("--seeds", type=int, default=1, help="train everything for seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=10, help="float training epochs (both networks)")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--prune-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3, help="float training: Adam, cosine decay from it")
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--prune-lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--momentum", type=float, default=0.9, help="BatchNormalization momentum")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--sparsity", type=float, default=0.75)
    parser.add_argument("--train-size", type=int, default=None, help="training images (default: all 4,000)")
    parser.add_argument("--test-size", type=int, default=None, help="test images (default: all 500)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--emulated-runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.train_size, args.test_size, args.seeds = 32, args.train_size or 256, args.test_size or 100, 1
        args.epochs = args.qat_epochs = args.prune_epochs = 1
        args.runs, args.rounds, args.emulated_runs = 20, 2, 1
    return args


def fit(model, x, y, args, epochs, lr, from_logits, callbacks=()):
    """Compiles `model` (Adam(`lr`: a float or a schedule), sparse cross-entropy), fits it; returns the seconds."""
    import keras

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(keras.optimizers.Adam(lr), loss, metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return time.perf_counter() - started


def file_accuracy(path, x, labels, threads):
    """Accuracy of a `.tflite` classifier on `x` with LiteRT (float inputs, quantized for int8 files)."""
    import numpy as np

    from tflite_export._runner import Runner

    outputs = Runner(path, num_threads=threads).run_batch(x)
    return float(np.mean(np.argmax(next(iter(outputs.values())).value, axis=-1) == labels))


def run_seed(args, seed, data, tmp):
    """Trains and exports every row for one seed; returns ``{key: {"path", "accuracy", ...}}``."""
    import keras
    import numpy as np
    from _cnn_edge import build, run_tfmot, save_for_twin

    from kcompress import pruning, quantization
    from tflite_export import convert

    train, test = data
    scaled = (train.images / 127.5 - 1.0, test.images / 127.5 - 1.0)  # The XNNPACK-ready network's inputs.
    steps = math.ceil(len(train.labels) / args.batch_size)
    out = {}

    def cosine():
        return keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps * args.epochs)

    def export(key, model, **options):
        path = Path(tmp) / f"seed{seed}_{key}.tflite"
        convert(model, path, **options)
        x = scaled[1] if dict((r[0], r[2]) for r in ROWS)[key] == "xnnpack_ready" else test.images
        out[key] = {"path": str(path), "accuracy": file_accuracy(path, x, test.labels, args.threads)}
        print(f"seed {seed} {key}: accuracy {out[key]['accuracy']:.4f}", flush=True)

    def tfmot(task, model, x, **flags):
        twin_data = Path(tmp) / f"seed{seed}_{task}.npz"
        save_for_twin(twin_data, model, x, train.labels)
        path = Path(tmp) / f"seed{seed}_{task}_tfmot.tflite"
        common = dict(alpha=args.alpha, size=args.size, momentum=args.momentum, batch_size=args.batch_size)
        child = run_tfmot(task, twin_data, path, seed=seed, **common, **flags)
        key = f"{'qat' if task == 'qat' else 'pruned'}_tfmot"
        x_test = test.images if task == "qat" else scaled[1]
        out[key] = {"path": str(path), "accuracy": file_accuracy(path, x_test, test.labels, args.threads), **child}
        print(f"seed {seed} {key}: accuracy {out[key]['accuracy']:.4f}; {child}", flush=True)

    keras.utils.set_random_seed(seed)
    model = build("mobilenet_v2", args.alpha, args.size, args.momentum, keras)
    train_s = fit(model, train.images, train.labels, args, args.epochs, cosine(), from_logits=False)
    export("float32", model)
    export("dynamic", model, mode="dynamic")
    export("int8_ptq", model, mode="int8", representative_data=train.images[:200], calibration_steps=200)

    keras.utils.set_random_seed(seed)
    qat = quantization.quantize_model(model)
    quantization.calibrate(qat, train.images[: args.batch_size])
    qat_s = fit(qat, train.images, train.labels, args, args.qat_epochs, args.qat_lr, from_logits=False)
    export("qat_kcompress", qat, mode="int8")
    keras_accuracy = float(qat.evaluate(test.images, test.labels, verbose=0)[1])
    out["qat_kcompress"].update(fine_tune_s=qat_s, keras_accuracy=keras_accuracy)
    tfmot("qat", model, train.images, epochs=args.qat_epochs, lr=args.qat_lr)
    keras_accuracy = float(model.evaluate(test.images, test.labels, verbose=0)[1])
    out["float32"].update(train_s=train_s, keras_accuracy=keras_accuracy)

    keras.utils.set_random_seed(seed)
    ready = build("xnnpack_ready", args.alpha, args.size, args.momentum, keras)
    fit(ready, scaled[0], train.labels, args, args.epochs, cosine(), from_logits=True)
    export("xnnpack_float32", ready)
    end_step = max(1, steps * args.prune_epochs * 2 // 3)  # Reach the final sparsity, then recover for a third.
    frequency = max(1, steps // 4)
    keras.utils.set_random_seed(seed)
    schedule = pruning.PolynomialDecay(0.0, args.sparsity, begin_step=0, end_step=end_step, frequency=frequency)
    pruned = pruning.prune_low_magnitude(ready, sparsity_schedule=schedule, policy=pruning.XNNPackSparse())
    callbacks = [pruning.UpdatePruningStep()]
    prune_s = fit(pruned, scaled[0], train.labels, args, args.prune_epochs, args.prune_lr, True, callbacks)
    stripped = pruning.strip_pruning(pruned)
    export("pruned_kcompress", stripped, sparse=True)
    kernels = [layer.kernel.numpy() for layer in pruning.XNNPackSparse().select(stripped)]
    zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    out["pruned_kcompress"].update(fine_tune_s=prune_s, zeros=zeros)
    tfmot(
        "prune", ready, scaled[0], epochs=args.prune_epochs, lr=args.prune_lr, sparsity=args.sparsity,
        end_step=end_step, frequency=frequency,
    )  # fmt: skip
    return out


def measure_files(args, paths):
    """Size, gzipped size, Edge TPU ops, LiteRT latency (and emulated no-AVX latency) of seed 0's files."""
    from sparse_latency import emulated_times

    from tflite_export import check_edgetpu, compare

    latencies = compare(paths, threads=args.threads, runs=args.runs, rounds=args.rounds, warmup=10)
    emulated = emulated_times([paths[key] for key in EMULATED_ROWS], args.emulated_runs)
    files = {}
    for key, path in paths.items():
        data = Path(path).read_bytes()
        report = check_edgetpu(path)
        latency = latencies[key]
        files[key] = {
            "size_mb": len(data) / 1e6,
            "gzip_mb": len(gzip.compress(data, 9)) / 1e6,
            "median_ms": latency.median_ms,
            "p90_ms": latency.p90_ms,
            "mean_ms": latency.mean_ms,
            "edgetpu_mapped": report.mapped_ops,
            "edgetpu_total": report.total_ops,
            "emulated_no_avx_ms": emulated[path] if emulated and path in emulated else None,
        }
    return files


def _mean_std(values):
    import numpy as np

    return float(np.mean(values)), float(np.std(values))


def table(args, rows, checks, seconds):
    """The markdown written to ``cnn_edge.md``."""

    def accuracy(r):
        mean, std = r["accuracy_mean"], r["accuracy_std"]
        return f"{mean:.2%} ± {std:.2%}" if args.seeds > 1 else f"{mean:.2%}"

    def emulated(r):
        return "—" if r["emulated_no_avx_ms"] is None else f"{r['emulated_no_avx_ms']:.1f}"

    seeds = (
        f"mean ± std over {args.seeds} seeds (sizes, latencies and ops: seed 0)"
        if args.seeds > 1
        else "one seed (0): no spread over seeds was measured (time-boxed run)"
    )
    lines = [
        f"MobileNetV2 alpha {args.alpha}, {args.size}x{args.size}x3, 10 classes, trained from scratch on "
        f"{args.train_n:,} MNIST digits (`load_mnist`, BatchNormalization momentum {args.momentum}): "
        f"{args.epochs} epochs float (Adam, cosine decay from {args.lr:g}), then {args.qat_epochs} QAT epochs "
        f"(Adam {args.qat_lr:g}) "
        f"or {args.prune_epochs} pruning epochs (Adam {args.prune_lr:g}, PolynomialDecay to {args.sparsity:.0%} "
        f"over the first two thirds), batch {args.batch_size}; kcompress and tfmot start from the same weights. "
        f"Accuracy: the `.tflite` on the {args.test_n} test digits, {seeds}. Latency: LiteRT, batch 1, "
        f"{args.threads} threads, {args.rounds} interleaved rounds, {args.runs} runs per file. Emulated no-AVX: "
        f"qemu-x86_64 -cpu Nehalem, 1 thread, median of {args.emulated_runs} runs (this CPU has AVX, where "
        "XNNPACK keeps dense kernels; the emulated ratio shows whether it took its sparse path). The pruned "
        "rows are the XNNPACK-ready variant (inputs scaled to [-1, 1] outside the file), so their dense "
        "reference is the variant's row; the int8 files take int8 raw pixels.",
        "",
        "| model | size (MB) | gzip (MB) | latency median (ms) | p90 (ms) | vs float32 | emulated no-AVX (ms) "
        "| accuracy | Edge TPU ops |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['size_mb']:.2f} | {r['gzip_mb']:.2f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} "
            f"| {r['vs_float32']:.2f}x | {emulated(r)} | {accuracy(r)} | {r['edgetpu_mapped']} of "
            f"{r['edgetpu_total']} |"
        )
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {c['target']} | {c['measured']} | {'yes' if c['met'] else '**no**'} |" for c in checks]
    lines += ["", f"Whole run: {seconds / 60:.0f} min."]
    return "\n".join(lines)


def targets(rows):
    """The issue's targets, checked on this run's numbers."""
    r = {row["key"]: row for row in rows}
    acc = {key: row["accuracy_mean"] for key, row in r.items()}
    dense, sparse, tfmot = (r[k] for k in ("float32", "pruned_kcompress", "pruned_tfmot"))
    emulated = None
    if all(row["emulated_no_avx_ms"] is not None for row in (dense, r["xnnpack_float32"], sparse, tfmot)):
        emulated = (
            sparse["emulated_no_avx_ms"] / dense["emulated_no_avx_ms"],
            sparse["emulated_no_avx_ms"] / r["xnnpack_float32"]["emulated_no_avx_ms"],
            sparse["emulated_no_avx_ms"] / tfmot["emulated_no_avx_ms"],
        )
    gap = (acc["float32"] - acc["qat_kcompress"]) * 100
    checks = [
        {
            "target": "kcompress QAT int8 within 0.5 pt of float32",
            "measured": f"{acc['qat_kcompress']:.2%} vs {acc['float32']:.2%} "
            f"({abs(gap):.2f} pt {'below' if gap > 0 else 'above'})",
            "met": gap <= 0.5,
        },
        {
            "target": "kcompress QAT int8 not below tfmot QAT int8",
            "measured": f"{acc['qat_kcompress']:.2%} vs {acc['qat_tfmot']:.2%}",
            "met": acc["qat_kcompress"] >= acc["qat_tfmot"],
        },
        *(
            {
                "target": f"every op Edge-TPU-mappable: {r[key]['label']}",
                "measured": f"{r[key]['edgetpu_mapped']} of {r[key]['edgetpu_total']}",
                "met": r[key]["edgetpu_mapped"] == r[key]["edgetpu_total"],
            }
            for key in INT8_ROWS
        ),
        {
            "target": "sparse float32 <= 0.7x dense float32 latency (this AVX CPU)",
            "measured": f"{sparse['median_ms'] / dense['median_ms']:.2f}x",
            "met": sparse["median_ms"] <= 0.7 * dense["median_ms"],
        },
        {
            "target": "sparse float32 no slower than tfmot's (this AVX CPU)",
            "measured": f"{sparse['median_ms'] / tfmot['median_ms']:.2f}x",
            "met": sparse["median_ms"] <= tfmot["median_ms"],
        },
    ]
    if emulated is not None:
        checks += [
            {
                "target": "sparse float32 <= 0.7x dense float32 latency (emulated no-AVX)",
                "measured": f"{emulated[0]:.2f}x the float32 row, {emulated[1]:.2f}x the dense XNNPACK-ready variant",
                "met": emulated[0] <= 0.7,
            },
            {
                "target": "sparse float32 no slower than tfmot's (emulated no-AVX)",
                "measured": f"{emulated[2]:.2f}x",
                "met": emulated[2] <= 1.0,
            },
        ]
    return checks


def main(argv=None):
    args = parse_args(argv)
    from _results import write_results

    from kcompress.data import load_mnist

    started = time.perf_counter()
    size = (args.size, args.size)
    data = (
        load_mnist("train", image_size=size, channels=3, size=args.train_size),
        load_mnist("test", image_size=size, channels=3, size=args.test_size),
    )
    args.train_n, args.test_n = len(data[0].labels), len(data[1].labels)
    with tempfile.TemporaryDirectory() as tmp:
        per_seed = [run_seed(args, seed, data, tmp) for seed in range(args.seeds)]
        files = measure_files(args, {key: per_seed[0][key]["path"] for key, *_ in ROWS})
    rows = []
    for key, label, network, sparse in ROWS:
        mean, std = _mean_std([seed[key]["accuracy"] for seed in per_seed])
        row = {"key": key, "label": label, "network": network, "sparse": sparse, **files[key]}
        row.update(accuracy_mean=mean, accuracy_std=std, accuracy_per_seed=[seed[key]["accuracy"] for seed in per_seed])
        row.update({k: v for k, v in per_seed[0][key].items() if k not in ("path", "accuracy")})
        row["vs_float32"] = row["median_ms"] / files["float32"]["median_ms"]
        rows.append(row)
    checks = targets(rows)
    seconds = time.perf_counter() - started
    for row in rows:
        print(
            f"{row['label']:>60}: {row['size_mb']:.2f} MB, {row['median_ms']:.2f} ms ({row['vs_float32']:.2f}x "
            f"float32), emulated {row['emulated_no_avx_ms']}, accuracy {row['accuracy_mean']:.4f}, "
            f"Edge TPU {row['edgetpu_mapped']}/{row['edgetpu_total']}",
            flush=True,
        )
    for check in checks:
        print(f"{'met' if check['met'] else 'NOT met'}: {check['target']}: {check['measured']}", flush=True)
    result = {"rows": rows, "targets": checks, "seconds": seconds, **vars(args)}
    if args.quick:  # A smoke run: its numbers say nothing, so they stay out of benchmarks/results.
        print(table(args, rows, checks, seconds))
    else:
        write_results("cnn_edge", result, table(args, rows, checks, seconds))


if __name__ == "__main__":
    main()
