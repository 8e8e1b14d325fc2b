"""tfmot baseline: time pruning / QAT training of a small MLP with legacy tf_keras.

tensorflow-model-optimization (tfmot) only supports legacy Keras 2 (the
``tf_keras`` package). Selecting it requires ``TF_USE_LEGACY_KERAS=1`` to be
set *before* TensorFlow is first imported, and that choice is process-wide:
afterwards ``tf.keras`` is ``tf_keras`` for the rest of the process. kcompress
and its benchmarks use Keras 3, so this script must never be imported from
them; it is run in a separate interpreter (see ``benchmarks/_subprocess.py``).

Usage:
    python benchmarks/_tfmot_baseline.py --task prune --epochs 3 \
        --batch-size 32 --samples 8192 --seed 0 --repeats 1

Exactly one JSON line is written to stdout at the end; everything else
(TensorFlow logs, warnings, progress) goes to stderr.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # Must precede any TensorFlow import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402
from _mlp_task import make_data  # noqa: E402  (same data as kcompress)

TASKS = ("plain", "prune", "qat")


class EpochTimer(tf_keras.callbacks.Callback):
    """Records the wall time of every epoch with ``time.perf_counter``."""

    def __init__(self):
        super().__init__()
        self.times = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def build_mlp():
    """Builds ``Input(128) -> Dense(512, relu) -> Dense(512, relu) -> Dense(2)``."""
    inputs = tf_keras.Input(shape=(128,))
    h = tf_keras.layers.Dense(512, activation="relu")(inputs)
    h = tf_keras.layers.Dense(512, activation="relu")(h)
    outputs = tf_keras.layers.Dense(2)(h)
    return tf_keras.Model(inputs, outputs)


def dense_kernel_sparsity(model):
    """Returns the fraction of zeros over all Dense kernels of ``model``."""
    kernels = [layer.kernel.numpy() for layer in model.layers if isinstance(layer, tf_keras.layers.Dense)]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    return zeros / sum(k.size for k in kernels)


def build(task, epochs, steps_per_epoch):
    """``(compiled model, callbacks)`` of a fresh MLP for `task` (callbacks without a timer)."""
    model = build_mlp()
    callbacks = []
    if task == "prune":
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=epochs * steps_per_epoch, frequency=100
        )
        model = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    elif task == "qat":
        model = tfmot.quantization.keras.quantize_model(model)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(1e-3),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, callbacks


def run_alternating(task, x, y, epochs, batch_size):
    """Fresh plain and `task` models fit one epoch each in turn; ``{name: row}`` with every epoch's time.

    Epoch ``i`` of both ran back to back, so a slow spell of the machine
    lands on both sides of their ratio.
    """
    steps = math.ceil(len(x) / batch_size)
    runs = {name: build(name, epochs, steps) for name in ("plain", task)}
    times = {name: [] for name in runs}
    accuracy = {}
    for epoch in range(epochs):
        for name, (model, callbacks) in runs.items():
            timer = EpochTimer()
            history = model.fit(
                x, y, batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                callbacks=[timer, *callbacks],
            )
            times[name].append(timer.times[0])
            accuracy[name] = float(history.history["accuracy"][-1])
    rows = {}
    for name, (model, _) in runs.items():
        sparsity = dense_kernel_sparsity(tfmot.sparsity.keras.strip_pruning(model)) if name == "prune" else None
        rows[name] = {
            "framework": "tfmot" if name != "plain" else "tf_keras",
            "task": name,
            "epoch_times": times[name],
            "epoch_s_median": statistics.median(times[name][1:]),
            "first_epoch_s": times[name][0],
            "final_accuracy": accuracy[name],
            "final_sparsity": sparsity,
        }
    return rows


def run_once(task, x, y, epochs, batch_size):
    """Builds a fresh model, fits it and returns ``(epoch_times, accuracy, sparsity)``."""
    model, callbacks = build(task, epochs, math.ceil(len(x) / batch_size))
    timer = EpochTimer()
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer, *callbacks])
    sparsity = None
    if task == "prune":
        sparsity = dense_kernel_sparsity(tfmot.sparsity.keras.strip_pruning(model))
    return timer.times, float(history.history["accuracy"][-1]), sparsity


def parse_args(argv=None):
    """Parses and validates the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--alternate", action="store_true", help="fit a plain model and the task's one epoch each in turn"
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(
            f"--epochs must be >= 2 (the first epoch includes tracing "
            f"and is excluded from the median), got {args.epochs}"
        )
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.samples < args.batch_size:
        parser.error(f"--samples must be >= --batch-size ({args.batch_size}), got {args.samples}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Anything printed by libraries goes to stderr; stdout carries only the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        tf_keras.utils.set_random_seed(args.seed)
        x, y = make_data(args.samples, args.seed)
        if args.alternate:
            rows = run_alternating(args.task, x, y, args.epochs, args.batch_size)
            print(json.dumps({"tf_version": tf.__version__, "tfmot_version": tfmot.__version__, "runs": rows}),
                  file=sys.__stdout__, flush=True)
            return
        best = None  # (median, first, accuracy, sparsity) of the fastest repeat.
        for r in range(args.repeats):
            times, acc, sparsity = run_once(args.task, x, y, args.epochs, args.batch_size)
            median = statistics.median(times[1:])
            print(
                f"repeat {r + 1}/{args.repeats}: epoch times {[round(t, 3) for t in times]} acc={acc:.4f}",
                file=sys.stderr,
            )
            if best is None or median < best[0]:
                best = (median, times[0], acc, sparsity)
    result = {
        "framework": "tfmot",
        "task": args.task,
        "tf_version": tf.__version__,
        "tfmot_version": tfmot.__version__,
        "epoch_s_median": best[0],
        "first_epoch_s": best[1],
        "final_accuracy": best[2],
        "final_sparsity": best[3],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
