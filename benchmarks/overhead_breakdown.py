"""Where the training overhead of pruning and QAT goes: each part switched off in turn.

Same MLP, data and settings as `pruning_overhead.py` and `qat_overhead.py`.
Every repeat runs plain Keras 3 `fit` and then each variant right after it,
and each variant's ratio to that plain fit is reported as the median over
the repeats with its range. Variants:

- pruning: the whole wrapper; the wrapper with its mask update switched off
  (only ``weight * mask`` and the step counter remain);
- QAT: the whole model; weights rounded by plain TensorFlow ops instead of
  the one XLA-compiled function (the candidate cause of QAT's ratio
  differing between machines); the activation quantizers' learnt ranges
  left as they are (no fake quantization of activations).

The switches replace kcompress internals for the duration of one fit: this
script measures, it is not a way to train.

Usage:
    python benchmarks/overhead_breakdown.py [--epochs 5] [--repeats 5]

Writes benchmarks/results/overhead_breakdown.json and .md.
"""

import contextlib
import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from _mlp_task import make_data  # noqa: E402
from _overhead import build_mlp, parse_args, timed_fit  # noqa: E402
from _results import write_results  # noqa: E402

from kcompress import pruning, quantization  # noqa: E402
from kcompress.pruning import wrapper as pruning_wrapper  # noqa: E402
from kcompress.quantization import backends, quantizers  # noqa: E402


@contextlib.contextmanager
def replaced(owner, name, value):
    """`owner.name` is `value` inside the context."""
    old = owner.__dict__[name]  # As stored: a staticmethod stays one when put back.
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _no_switch():
    return contextlib.nullcontext()


def _identity_activations(self, inputs, training=None):
    return inputs


VARIANTS = {
    "pruning": ("prune", _no_switch),
    "pruning, no mask update": (
        "prune",
        lambda: replaced(pruning_wrapper.PruneLowMagnitude, "update_masks", lambda self: None),
    ),
    "QAT": ("qat", _no_switch),
    "QAT, weights rounded by plain ops": (
        "qat",
        lambda: replaced(backends.TensorFlowPrimitives, "compile", staticmethod(lambda fn: fn)),
    ),
    "QAT, no activation fake quantization": (
        "qat",
        lambda: replaced(quantizers.ActivationQuantizer, "call", _identity_activations),
    ),
}


def time_fit(task, switch, x, y, args, seed):
    keras.utils.set_random_seed(seed)
    model, callbacks = build_mlp(), []
    if task == "prune":
        end_step = args.epochs * math.ceil(len(x) / args.batch_size)
        schedule = pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=end_step, frequency=100)
        model = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
        callbacks.append(pruning.UpdatePruningStep())
    elif task == "qat":
        model = quantization.quantize_model(model)
    with switch():
        return timed_fit(model, x, y, args.epochs, args.batch_size, callbacks)["epoch_s_median"]


def main():
    args = parse_args(__doc__, epochs=5, repeats=5)
    x, y = make_data(args.samples, args.seed)
    ratios = {name: [] for name in VARIANTS}
    plain = []
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        for name, (task, switch) in VARIANTS.items():
            base = time_fit("plain", _no_switch, x, y, args, seed)
            plain.append(base)
            ratios[name].append(time_fit(task, switch, x, y, args, seed) / base)
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{n} {r[-1]:.3f}" for n, r in ratios.items()))
    rows = {
        name: {"median": statistics.median(values), "low": min(values), "high": max(values), "ratios": values}
        for name, values in ratios.items()
    }
    lines = [
        f"plain Keras 3 fit: {statistics.median(plain):.3f} s/epoch (median of {len(plain)} fits)",
        "",
        "| variant | ratio to the plain fit run just before it, median [range] |",
        "|---|---|",
    ]
    lines += [f"| {name} | {r['median']:.3f}x [{r['low']:.3f}-{r['high']:.3f}] |" for name, r in rows.items()]
    lines += ["", f"{args.repeats} repeats of {args.epochs} epochs, batch {args.batch_size}, {args.samples} samples"]
    table = "\n".join(lines)
    print(table)
    result = {
        "benchmark": "overhead_breakdown",
        "command": "python benchmarks/overhead_breakdown.py " + " ".join(sys.argv[1:]),
        "settings": vars(args),
        "plain_epoch_s": plain,
        "variants": rows,
    }
    write_results("overhead_breakdown", result, table)


if __name__ == "__main__":
    main()
