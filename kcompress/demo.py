"""`make demo`: fine-tune MiniLM on the shipped snippets, prune it to 50%.

The whole story on the offline data and model that ship with the install:

1. fine-tune all-MiniLM-L6-v2 (`BertTextClassifier`) on rotten-tomatoes
   snippets;
2. wrap it with `prune_low_magnitude` (PolynomialDecay to 50%) and
   fine-tune under pruning with `UpdatePruningStep`;
3. `strip_pruning` to a plain keras-hub model;
4. print test accuracy and the sparsity report before and after.

Run with ``python -m kcompress.demo [--train-size N] [--quick]``.
"""

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _parse(argv):
    parser = argparse.ArgumentParser(description="kcompress pruning demo on MiniLM")
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--prune-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=800)
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_size, args.prune_size, args.test_size = 64, 64, 64
    return args


def _accuracy(model, split):
    import numpy as np

    logits = model.predict(split.texts, batch_size=64, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == split.labels))


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    import keras

    from kcompress import pruning
    from kcompress.data import load_minilm_classifier, load_rotten_tomatoes

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    train = load_rotten_tomatoes("train", size=args.train_size)
    tune = load_rotten_tomatoes("validation", size=min(args.prune_size, 1280))
    if args.prune_size > 1280:  # More pruning data than validation: take train's tail.
        extra = load_rotten_tomatoes("train")[-(args.prune_size - 1280):]
        tune = type(tune)(list(tune.texts) + list(extra.texts),
                          list(tune.labels) + list(extra.labels))
    test = load_rotten_tomatoes("test", size=args.test_size)

    print(f"[1/4] fine-tuning MiniLM on {len(train):,} snippets "
          f"(sequence length {args.sequence_length})", flush=True)
    model = load_minilm_classifier(num_classes=2, sequence_length=args.sequence_length)
    model.fit(train.texts, train.labels, batch_size=32, epochs=1)
    dense_accuracy = _accuracy(model, test)
    print(f"      dense test accuracy: {dense_accuracy:.3f}", flush=True)

    steps = math.ceil(len(tune) / 32)
    print(f"[2/4] pruning to {args.sparsity:.0%} while fine-tuning on {len(tune):,} snippets "
          f"({steps} steps)", flush=True)
    schedule = pruning.PolynomialDecay(
        0.0, args.sparsity, begin_step=0, end_step=max(1, steps * 2 // 3), frequency=max(1, steps // 10)
    )
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
    pruned.compile(optimizer=keras.optimizers.Adam(5e-5),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    pruned.fit(tune.texts, tune.labels, batch_size=32, epochs=1,
               callbacks=[pruning.UpdatePruningStep()])

    print("[3/4] stripping the pruning wrappers", flush=True)
    small = pruning.strip_pruning(pruned)
    pruned_accuracy = _accuracy(small, test)

    print("[4/4] results", flush=True)
    before = pruning.sparsity_report(model)
    after = pruning.sparsity_report(small)
    print("\nSparsity report after pruning (prunable kernels of the encoder and head):")
    print(after)
    print()
    print("| model | test accuracy | kernel sparsity (encoder + head) | all weights in the report |")
    print("|---|---|---|---|")
    for name, accuracy, report in (("MiniLM fine-tuned", dense_accuracy, before),
                                   ("pruned + stripped", pruned_accuracy, after)):
        kernels = [r for r in report.rows if not r.path.endswith("embeddings")]
        zeros, size = sum(r.zeros for r in kernels), sum(r.size for r in kernels)
        print(f"| {name} | {accuracy:.3f} | {zeros / size:.1%} ({zeros:,} / {size:,}) | "
              f"{report.total_sparsity:.1%} of {report.total_size:,} |")
    print(f"\n{len(test):,} test snippets; total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
