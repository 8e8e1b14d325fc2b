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
    compile_mlp(model)
    timer = EpochTimer()
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer, *callbacks])
    return {
        "epoch_s_median": statistics.median(timer.times[1:]),
        "first_epoch_s": timer.times[0],
        "final_accuracy": history.history["accuracy"][-1],
        "final_loss": history.history["loss"][-1],
    }


def compile_mlp(model):
    """Compiles `model` as every overhead run does (Adam 1e-3, logits cross-entropy, accuracy)."""
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def alternating_fits(runs, x, y, epochs, batch_size):
    """Fits each ``name: (compiled model, callbacks)`` one epoch at a time, in turn; ``{name: row}``.

    Epoch ``i`` of every model runs back to back with the others' epoch
    ``i``, so a slow spell of a shared machine lands on both sides of their
    ratio. Each row keeps every epoch's time (the first one includes tracing).
    """
    times = {name: [] for name in runs}
    history = {}
    for epoch in range(epochs):
        for name, (model, callbacks) in runs.items():
            timer = EpochTimer()
            history[name] = model.fit(
                x,
                y,
                batch_size=batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                verbose=0,
                callbacks=[timer, *callbacks],
            ).history
            times[name].append(timer.times[0])
    return {
        name: {
            "epoch_times": times[name],
            "epoch_s_median": statistics.median(times[name][1:]),
            "first_epoch_s": times[name][0],
            "final_accuracy": history[name]["accuracy"][-1],
            "final_loss": history[name]["loss"][-1],
        }
        for name in runs
    }


def repeated(repeats, run):
    """``run(repeat) -> {name: row}`` for each repeat; ``{name: [row of each repeat]}``."""
    rows = [run(repeat) for repeat in range(repeats)]
    return {name: [row[name] for row in rows] for name in rows[0]}


def _row(run):
    return run[0] if isinstance(run, tuple) else run


def typical(runs):
    """The run whose steady epoch time is the median of the repeats' (the lower middle one)."""
    ordered = sorted(runs, key=lambda run: _row(run).get("epoch_s_median", float("inf")))
    return ordered[(len(ordered) - 1) // 2]


def ratio_spread(runs, task):
    """Ratios ``task / plain`` of the epochs that ran back to back (tracing epochs left out), pooled over
    the repeats: their median, lowest and highest; None if a side was skipped."""
    pairs = list(zip(runs[task], runs["plain"]))
    if any("skipped" in t or "skipped" in p for t, p in pairs):
        return None
    values = [a / b for t, p in pairs for a, b in zip(t["epoch_times"][1:], p["epoch_times"][1:])]
    return {"median": statistics.median(values), "low": min(values), "high": max(values), "ratios": values}


def spread_text(spread):
    """``1.07x [1.03-1.12]``: the median ratio and its range over the repeats."""
    if spread is None:
        return ""
    return f"{spread['median']:.2f}x [{spread['low']:.2f}-{spread['high']:.2f}]"


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


def run_header(name, args, ours, tfmot, task, target):
    """The fields every overhead result JSON starts with: the machine, settings, ratio spreads and target."""
    kcompress_ratio, tfmot_ratio = ratio_spread(ours, task), ratio_spread(tfmot, task)
    below = tfmot_ratio is None or kcompress_ratio["median"] < tfmot_ratio["median"]
    return {
        "benchmark": name,
        "command": f"python benchmarks/{name}.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": vars(args),
        "kcompress_ratio_to_plain": kcompress_ratio,
        "tfmot_ratio_to_plain": tfmot_ratio,
        "target": f"kcompress median <= {target:.2f}x plain and below tfmot's median ratio",
        "target_met": kcompress_ratio["median"] <= target and below,
    }


def overhead_table(ours, tfmot, task, names, extra_columns=()):
    """The Markdown table of both sides: median steady epoch, first epoch, ratio median [range].

    `names` maps ``(side, task)`` to a row title; `extra_columns` are
    ``(title, row -> text)`` pairs.
    """
    titles = ["run", "s/epoch (median)", "first epoch s", "epoch ratio to its plain fit, median [range]"]
    titles += [title for title, _ in extra_columns]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for side, runs in (("keras3", ours), ("tfmot", tfmot)):
        spread = ratio_spread(runs, task)
        for name in ("plain", task):
            row = _row(typical(runs[name]))
            title = names[side, name]
            if "skipped" in row:
                lines.append(f"| {title} | skipped: {row['skipped']} |" + " |" * (len(titles) - 2))
                continue
            ratio = "1.00x" if name == "plain" else spread_text(spread)
            cells = [title, f"{row['epoch_s_median']:.3f}", f"{row['first_epoch_s']:.2f}", ratio]
            cells += [text(row) for _, text in extra_columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_line(args, result):
    """The line under the table: how many epochs were paired, the target and whether it was met."""
    runs = f"{args.repeats} repeats of {args.epochs} alternating epochs (the first, tracing, not timed)"
    return f"{runs}; target: {result['target']}, met: {result['target_met']}"
