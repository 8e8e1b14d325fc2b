"""Training-time overhead of pruning: kcompress vs plain Keras 3 vs tfmot.

Same MLP (128 -> 512 -> 512 -> 2), data, epochs and batch size for:
plain Keras 3 `fit`; kcompress pruning `fit` (PolynomialDecay to 80%,
frequency 100, both libraries' default); tfmot pruning of an identical
tf_keras model, run in a subprocess because importing tfmot switches a
process to legacy Keras. Each framework's ratio is to its own plain `fit`
measured in the same run (tfmot's to plain tf_keras), and the steady-state
epoch time (median of epochs after the first, which includes tracing) is
compared. The repeats are interleaved (plain, then the compressed fit, then
plain again, ...) on each side: repeat i of each pair ran back to back, and
the ratio is reported as the median of the repeats' paired ratios with
their range, so a slow spell of a shared machine shows as spread rather
than as a bias.

Usage:
    python benchmarks/pruning_overhead.py [--epochs 5] [--repeats 7]

Writes benchmarks/results/pruning_overhead.json and .md.
"""

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from _mlp_task import make_data  # noqa: E402
from _overhead import build_mlp, interleaved_fits, overhead_table, parse_args, run_header, target_line, timed_fit  # noqa: E402
from _results import write_results  # noqa: E402
from _subprocess import run_tfmot_baselines  # noqa: E402

from kcompress import pruning  # noqa: E402

TARGET = 1.05


def time_fit(task, x, y, epochs, batch_size, seed):
    keras.utils.set_random_seed(seed)
    model = build_mlp()
    callbacks = []
    if task == "prune":
        end_step = epochs * math.ceil(len(x) / batch_size)
        schedule = pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=end_step, frequency=100)
        model = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
        callbacks.append(pruning.UpdatePruningStep())
    result = {
        "framework": "kcompress" if task == "prune" else "keras3",
        "task": task,
        **timed_fit(model, x, y, epochs, batch_size, callbacks),
        "final_sparsity": None,
    }
    if task == "prune":
        result["final_sparsity"] = pruning.sparsity_report(pruning.strip_pruning(model)).total_sparsity
    return result


def _sparsity_text(row):
    return "" if row.get("final_sparsity") is None else f"{row['final_sparsity']:.3f}"


def main():
    args = parse_args(__doc__, epochs=5, repeats=7)
    x, y = make_data(args.samples, args.seed)
    ours = interleaved_fits(
        ("plain", "prune"),
        args.repeats,
        lambda task, i: time_fit(task, x, y, args.epochs, args.batch_size, args.seed + i),
    )
    tfmot = run_tfmot_baselines(args, ("plain", "prune"))
    result = {
        **run_header("pruning_overhead", args, ours, tfmot, "prune", TARGET),
        "runs": {"kcompress": ours, "tfmot": tfmot},
    }
    names = {
        ("keras3", "plain"): "plain Keras 3 fit",
        ("keras3", "prune"): "kcompress pruning fit",
        ("tfmot", "plain"): "plain tf_keras fit",
        ("tfmot", "prune"): "tfmot pruning fit (tf_keras)",
    }
    table = overhead_table(ours, tfmot, "prune", names, [("final sparsity", _sparsity_text)])
    table += "\n\n" + target_line(args, result)
    print(table)
    write_results("pruning_overhead", result, table)


if __name__ == "__main__":
    main()
