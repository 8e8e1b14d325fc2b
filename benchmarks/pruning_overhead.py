"""Training-time overhead of pruning: kcompress vs plain Keras 3 vs tfmot.

Same MLP (128 -> 512 -> 512 -> 2), data, epochs and batch size for:
plain Keras 3 `fit`; kcompress pruning `fit` (PolynomialDecay to 80%,
frequency 100, both libraries' default); tfmot pruning of an identical
tf_keras model, run in a subprocess because importing tfmot switches a
process to legacy Keras. Each framework's ratio is to its own plain `fit`
measured in the same run (tfmot's to plain tf_keras), and the steady-state
epoch time (median of epochs after the first, which includes tracing) is
compared. On each side a repeat fits a fresh plain model and a fresh pruned
one one epoch each in turn, so epoch i of both ran back to back; the ratio
is the median of those epoch pairs (the first, tracing, left out) over all
repeats, with its range: a slow spell of a shared machine shows as spread
rather than as a bias.

Usage:
    python benchmarks/pruning_overhead.py [--epochs 8] [--repeats 3]

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
from _overhead import (  # noqa: E402
    alternating_fits,
    build_mlp,
    compile_mlp,
    overhead_table,
    parse_args,
    repeated,
    run_header,
    target_line,
)
from _results import write_results  # noqa: E402
from _subprocess import run_tfmot_baselines  # noqa: E402

from kcompress import pruning  # noqa: E402

TARGET = 1.05


def pair(x, y, args, repeat):
    """A fresh plain MLP and a pruned one, fit one epoch each in turn: ``{"plain": row, "prune": row}``."""
    keras.utils.set_random_seed(args.seed + repeat)
    plain = compile_mlp(build_mlp())
    keras.utils.set_random_seed(args.seed + repeat)
    end_step = args.epochs * math.ceil(len(x) / args.batch_size)
    schedule = pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=end_step, frequency=100)
    pruned = compile_mlp(pruning.prune_low_magnitude(build_mlp(), sparsity_schedule=schedule))
    rows = alternating_fits(
        {"plain": (plain, []), "prune": (pruned, [pruning.UpdatePruningStep()])}, x, y, args.epochs, args.batch_size
    )
    rows["plain"]["framework"], rows["prune"]["framework"] = "keras3", "kcompress"
    rows["prune"]["final_sparsity"] = pruning.sparsity_report(pruning.strip_pruning(pruned)).total_sparsity
    return rows


def _sparsity_text(row):
    return "" if row.get("final_sparsity") is None else f"{row['final_sparsity']:.3f}"


def main():
    args = parse_args(__doc__, epochs=8, repeats=3)
    x, y = make_data(args.samples, args.seed)
    ours = repeated(args.repeats, lambda repeat: pair(x, y, args, repeat))
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
