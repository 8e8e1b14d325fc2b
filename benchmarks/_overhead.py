"""The Keras 3 side of the overhead benchmarks (pruning, QAT): MLP, timing, ratios.

Kept apart from `_mlp_task` (numpy only), which the tfmot subprocess imports
and which must not import Keras 3.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import keras
from _mlp_task import CLASSES, HIDDEN, INPUT_DIM


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def build_mlp():
    """The benchmark MLP, 128 -> 512 -> 512 -> 2 (the tfmot twin mirrors it)."""
    return keras.Sequential(
        [
            keras.Input((INPUT_DIM,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES),
        ]
    )


def timed_fit(model, x, y, epochs, batch_size, callbacks=()):
    """Compiles and fits `model`; returns the timing/accuracy fields of a result row."""
    timer = EpochTimer()
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer, *callbacks])
    return {
        "epoch_s_median": statistics.median(timer.times[1:]),
        "first_epoch_s": timer.times[0],
        "final_accuracy": history.history["accuracy"][-1],
        "final_loss": history.history["loss"][-1],
    }


def interleaved_fits(tasks, repeats, fit):
    """``fit(task, repeat)`` for each repeat of each task, interleaved; each task's fastest run.

    Interleaving (plain, task, plain, task, ...) keeps a slow spell of a
    shared machine from landing on one task only. `fit` returns a row (with
    ``epoch_s_median``, or ``skipped`` for a baseline that could not run) or
    ``(row, model)``; the result maps each task to the fastest one, as
    returned (a skipped row only when every repeat was skipped).
    """
    runs = {task: [] for task in tasks}
    for repeat in range(repeats):
        for task in tasks:
            runs[task].append(fit(task, repeat))
    row = lambda run: run[0] if isinstance(run, tuple) else run
    seconds = lambda run: row(run).get("epoch_s_median", float("inf"))
    return {task: min(results, key=seconds) for task, results in runs.items()}


def parse_args(doc, epochs, repeats):
    """The shared flags; the first epoch (tracing) is never timed, so at least 2."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(f"Expected --epochs >= 2 (the first epoch is tracing). Received: {args.epochs}")
    return args


def ratios(ours, tfmot, task):
    """Same-run ratios to each library's own plain fit: ``(kcompress, tfmot or None)``."""
    kcompress = ours[task]["epoch_s_median"] / ours["plain"]["epoch_s_median"]
    if "skipped" in tfmot[task]:
        return kcompress, None
    return kcompress, tfmot[task]["epoch_s_median"] / tfmot["plain"]["epoch_s_median"]


def run_header(name, args, kcompress_ratio, tfmot_ratio, target):
    """The fields every overhead result JSON starts with."""
    return {
        "benchmark": name,
        "command": f"python benchmarks/{name}.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": vars(args),
        "kcompress_ratio_to_plain": kcompress_ratio,
        "tfmot_ratio_to_plain": tfmot_ratio,
        "target": f"kcompress <= {target:.2f}x plain and below tfmot's ratio",
        "target_met": kcompress_ratio <= target and (tfmot_ratio is None or kcompress_ratio < tfmot_ratio),
    }
