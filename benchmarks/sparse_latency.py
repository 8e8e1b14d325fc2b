"""Dense vs sparse float32 `.tflite` of a 75%-pruned MobileNetV2, timed on LiteRT (XNNPACK).

Two MobileNetV2s (random weights, 96x96 input, 1000 classes) have their 1x1
convolutions pruned by `kcompress.pruning.XNNPackSparse` (one step of
`fit` with a zero learning rate computes the masks), are stripped, and are
converted twice: plain float32 and ``sparse=True``. The four files are timed
in interleaved rounds (`tflite_export.compare`, 2 threads).

- ``keras.applications.MobileNetV2``: its padding keeps XNNPACK dense
  (pruned with ``check_padding=False``): only the file shrinks.
- the same network built with ``ZeroPadding2D`` + ``"valid"`` before every
  stride-2 convolution (XNNPACK-ready), classifier pruned too
  (``classifier=True``), so the sparse path can run where XNNPACK has it.

XNNPACK runs sparse kernels on ARM (phones) and on x86 CPUs without AVX
only; on an AVX machine both files run the same dense kernels, so expect a
ratio near 1.0 there. The JSON records whether this CPU has AVX. Where
``qemu-x86_64`` (Debian's qemu-user) is installed, the files are also timed
under ``qemu-x86_64 -cpu Nehalem`` (x86 without AVX, emulated: 1 thread,
`--emulated-runs` interleaved runs): emulated milliseconds are not a
phone's, but whether the sparse file is faster there shows whether XNNPACK
took its sparse path.

Run: ``python benchmarks/sparse_latency.py [--alpha 1.0] [--size 96] [--sparsity 0.75] [--runs 100]
[--rounds 10] [--emulated-runs 5]``. Writes ``benchmarks/results/sparse_latency.json`` and ``.md``.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# MobileNetV2's inverted residual blocks: (expansion, channels, repeats, first stride).
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(value, by=8):
    return max(by, int(value + by / 2) // by * by)


def xnnpack_ready_mobilenet_v2(alpha, size, classes, keras=None):
    """MobileNetV2 with ZeroPadding2D(1) + 'valid' before each stride-2 convolution (padding 1 on every side).

    Built with Keras 3 unless `keras` is another module with the same layers (``tf_keras`` for tfmot).
    """
    if keras is None:
        import keras

    L = keras.layers

    def unit(x, layer):
        return L.ReLU(6.0)(L.BatchNormalization()(layer(x)))

    x = inputs = keras.Input((size, size, 3))
    x = unit(L.ZeroPadding2D(1)(x), L.Conv2D(_divisible(32 * alpha), 3, strides=2, use_bias=False))
    channels = _divisible(32 * alpha)
    for expansion, width, repeats, stride in BLOCKS:
        out = _divisible(width * alpha)
        for i in range(repeats):
            s = stride if i == 0 else 1
            y = unit(x, L.Conv2D(channels * expansion, 1, use_bias=False)) if expansion != 1 else x
            y = L.ZeroPadding2D(1)(y) if s == 2 else y
            y = unit(y, L.DepthwiseConv2D(3, strides=s, padding="valid" if s == 2 else "same", use_bias=False))
            y = L.BatchNormalization()(L.Conv2D(out, 1, use_bias=False)(y))
            x = L.Add()([x, y]) if s == 1 and channels == out else y
            channels = out
    x = unit(x, L.Conv2D(_divisible(1280 * alpha) if alpha > 1.0 else 1280, 1, use_bias=False))
    return keras.Model(inputs, L.Dense(classes)(L.GlobalAveragePooling2D()(x)))


def pruned(model, policy, sparsity):
    """`model` pruned by `policy` to `sparsity` (masks from one zero-learning-rate step), stripped."""
    import keras
    import numpy as np

    from kcompress import pruning

    wrapped = pruning.prune_low_magnitude(model, pruning.ConstantSparsity(sparsity, begin_step=0), policy=policy)
    wrapped.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(0).random((2, *model.input_shape[1:]), dtype="float32")
    wrapped.fit(x, np.zeros((2, model.output_shape[-1])), verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(wrapped)
    zeros = sum(int(np.sum(stripped.get_layer(layer.name).kernel.numpy() == 0)) for layer in policy.select(model))
    size = sum(int(np.prod(layer.kernel.shape)) for layer in policy.select(model))
    return stripped, zeros / size


def _has_avx():
    try:
        return " avx " in f" {Path('/proc/cpuinfo').read_text()} ".replace("\n", " ")
    except OSError:
        return None


def emulated_times(paths, runs):
    """``{path: median ms}`` under ``qemu-x86_64 -cpu Nehalem`` (no AVX), or None without qemu-user."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None or platform.machine() != "x86_64":
        return None
    script = Path(__file__).with_name("_litert_times.py")
    command = [qemu, "-cpu", "Nehalem", sys.executable, str(script), "--runs", str(runs), *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3000, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--sparsity", type=float, default=0.75)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--emulated-runs", type=int, default=5)
    args = parser.parse_args()

    import keras
    from _results import write_results

    from kcompress import pruning
    from tflite_export import compare, convert
    from tflite_export._runner import xnnpack_parts

    started = time.perf_counter()
    keras.utils.set_random_seed(0)
    models = {
        "keras.applications.MobileNetV2": (
            keras.applications.MobileNetV2(
                input_shape=(args.size, args.size, 3), alpha=args.alpha, weights=None, classes=args.classes
            ),
            pruning.XNNPackSparse(check_padding=False),
        ),
        "MobileNetV2, XNNPACK-ready padding": (
            xnnpack_ready_mobilenet_v2(args.alpha, args.size, args.classes),
            pruning.XNNPackSparse(classifier=True),
        ),
    }
    rows, paths = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (model, policy)) in enumerate(models.items()):
            small, zero_fraction = pruned(model, policy, args.sparsity)
            for sparse in (False, True):
                key = f"{name}, {'sparse' if sparse else 'dense'}"
                result = convert(small, Path(tmp) / f"{i}_{int(sparse)}.tflite", sparse=sparse)
                print(result, flush=True)
                paths[key] = result.path
                rows.append(
                    {
                        "model": name,
                        "file": "float32 sparse" if sparse else "float32",
                        "key": key,
                        "size_mb": result.size_bytes / 1e6,
                        "densify_ops": result.model.op_counts().get("DENSIFY", 0),
                        "xnnpack_parts": len(xnnpack_parts(result.path, num_threads=args.threads)),
                        "zeros_in_pruned_kernels": zero_fraction,
                        "pruned_layers": len(policy.select(model)),
                    }
                )
        latencies = compare(paths, threads=args.threads, runs=args.runs, rounds=args.rounds, warmup=10)
        emulated = emulated_times(list(paths.values()), args.emulated_runs)
    for row in rows:
        latency = latencies[row["key"]]
        dense_key = row["key"].rsplit(", ", 1)[0] + ", dense"
        dense = latencies[dense_key]
        row.update(median_ms=latency.median_ms, p90_ms=latency.p90_ms, vs_dense=latency.median_ms / dense.median_ms)
        if emulated is not None:
            row["emulated_no_avx_ms"] = emulated[paths[row["key"]]]
            row["emulated_vs_dense"] = row["emulated_no_avx_ms"] / emulated[paths[dense_key]]
        print(f"{row['key']:>55}: {latency}; emulated without AVX: {row.get('emulated_no_avx_ms')}", flush=True)

    def emulated_cells(r):
        if "emulated_no_avx_ms" not in r:
            return "n/a | n/a"
        return f"{r['emulated_no_avx_ms']:.0f} | {r['emulated_vs_dense']:.2f}x"

    avx = _has_avx()
    table = "\n".join(
        [
            f"MobileNetV2 alpha {args.alpha}, {args.size}x{args.size}, {args.classes} classes, random weights; "
            f"1x1 kernels pruned to {args.sparsity:.0%} by XNNPackSparse; LiteRT, {args.threads} threads, "
            f"{args.rounds} interleaved rounds of {args.runs} runs; this CPU "
            f"{'has AVX: XNNPACK keeps dense kernels, sparse runs on ARM / non-AVX x86' if avx else 'has no AVX'}. "
            f"Emulated: the same files under qemu-x86_64 -cpu Nehalem (no AVX), 1 thread, median of "
            f"{args.emulated_runs} interleaved runs (emulated time, not a phone's: the ratio shows whether XNNPACK "
            f"took its sparse path).",
            "",
            "| model | file | size (MB) | median (ms) | p90 (ms) | latency vs dense | emulated no-AVX (ms) | "
            "emulated vs dense | pruned layers | zeros in pruned kernels | DENSIFY ops |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *(
                f"| {r['model']} | {r['file']} | {r['size_mb']:.2f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                f"{r['vs_dense']:.2f}x | {emulated_cells(r)} | {r['pruned_layers']} | "
                f"{r['zeros_in_pruned_kernels']:.2f} | {r['densify_ops']} |"
                for r in rows
            ),
        ]
    )
    result = {"rows": rows, "cpu_has_avx": avx, "seconds": time.perf_counter() - started, **vars(args)}
    write_results("sparse_latency", result, table)


if __name__ == "__main__":
    main()
