"""Training-time overhead of pruning: kcompress vs plain Keras 3 vs tfmot.

Same MLP (128 -> 512 -> 512 -> 2), data, epochs and batch size for:
plain Keras 3 `fit`; kcompress pruning `fit` (PolynomialDecay to 80%,
frequency 100, both libraries' default); tfmot pruning of an identical
tf_keras model, run in a subprocess because importing tfmot switches a
process to legacy Keras. Each framework's ratio is to its own plain `fit`
measured in the same run (tfmot's to plain tf_keras), and the steady-state
epoch time (median of epochs after the first, which includes tracing) is
compared. The repeats are interleaved (plain, then the compressed fit, then
plain again, ...) on each side and each run keeps its fastest repeat, so a
slow spell of a shared machine hits both alike.

Usage:
    python benchmarks/pruning_overhead.py [--epochs 4] [--repeats 3]

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
from _overhead import build_mlp, interleaved_fits, parse_args, ratios, run_header, timed_fit  # noqa: E402
from _results import write_results  # noqa: E402
from _subprocess import run_tfmot_baselines  # noqa: E402

from kcompress import pruning  # noqa: E402

TARGET = 1.10


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


def main():
    args = parse_args(__doc__, epochs=4, repeats=3)
    x, y = make_data(args.samples, args.seed)
    ours = interleaved_fits(
        ("plain", "prune"),
        args.repeats,
        lambda task, i: time_fit(task, x, y, args.epochs, args.batch_size, args.seed + i),
    )
    for task in ours:
        print(f"keras3 {task}: {ours[task]['epoch_s_median']:.3f} s/epoch", flush=True)
    tfmot = run_tfmot_baselines(args, ("plain", "prune"))
    kc_ratio, tfmot_ratio = ratios(ours, tfmot, "prune")
    rows = [
        ("plain Keras 3 fit", ours["plain"], 1.0),
        ("kcompress pruning fit", ours["prune"], kc_ratio),
        ("plain tf_keras fit", tfmot["plain"], 1.0 if tfmot_ratio else None),
        ("tfmot pruning fit (tf_keras)", tfmot["prune"], tfmot_ratio),
    ]
    result = {
        **run_header("pruning_overhead", args, kc_ratio, tfmot_ratio, TARGET),
        "runs": {"kcompress": ours, "tfmot": tfmot},
    }
    header = "| run | s/epoch (steady) | first epoch s | ratio to its plain fit | final sparsity |"
    lines = [header, "|---|---|---|---|---|"]
    for name, run, ratio in rows:
        if "skipped" in run:
            lines.append(f"| {name} | skipped: {run['skipped']} | | | |")
            continue
        sparsity = "" if run.get("final_sparsity") is None else f"{run['final_sparsity']:.3f}"
        ratio_text = "" if ratio is None else f"{ratio:.2f}x"
        lines.append(
            f"| {name} | {run['epoch_s_median']:.3f} | {run['first_epoch_s']:.2f} | {ratio_text} | {sparsity} |"
        )
    table = "\n".join(lines)
    print(table)
    write_results("pruning_overhead", result, table)


if __name__ == "__main__":
    main()
