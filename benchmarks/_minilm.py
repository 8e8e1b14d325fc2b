"""What the MiniLM benchmarks share: flags, tokens, a fine-tuned MiniLM, `.tflite` accuracy."""

import argparse
import time

import numpy as np

from kcompress.pipeline import tokenize as tokens  # noqa: F401 (the benchmarks' name for it)
from kcompress.pipeline.stages import compile_classifier  # noqa: F401


def parser(doc, *, sequence_length, train_size=4000, test_size=1280, runs=100):
    """The flags every MiniLM benchmark has; scripts add their own."""
    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    result.add_argument("--train-size", type=int, default=train_size)
    result.add_argument("--test-size", type=int, default=test_size)
    result.add_argument("--sequence-length", type=int, default=sequence_length)
    result.add_argument("--runs", type=int, default=runs, help="timed LiteRT invocations per model")
    result.add_argument("--threads", type=int, default=2)
    result.add_argument("--quick", action="store_true", help="a smoke run with tiny sizes; writes nothing")
    return result


def fine_tuned_minilm(train, sequence_length, epochs=1, batch_size=32):
    """MiniLM classifier fine-tuned on a `TextSplit`; returns ``(model, seconds)``."""
    from kcompress.data import load_minilm_classifier

    model = load_minilm_classifier(num_classes=2, sequence_length=sequence_length)
    print(f"fine-tuning MiniLM on {len(train):,} snippets, sequence length {sequence_length}", flush=True)
    started = time.perf_counter()
    model.fit(train.texts, train.labels, batch_size=batch_size, epochs=epochs, verbose=2)
    return model, time.perf_counter() - started


def accuracy(model, x, labels, batch_size=64):
    """Keras accuracy of a logits model on preprocessed inputs."""
    return float(np.mean(np.argmax(model.predict(x, batch_size=batch_size, verbose=0), -1) == labels))


def tflite_accuracy(path, x, labels, threads):
    """Accuracy of a `.tflite` classifier run with LiteRT on preprocessed inputs."""
    from tflite_export._runner import Runner

    outputs = Runner(path, num_threads=threads).run_batch(x)
    logits = next(iter(outputs.values())).value
    return float(np.mean(np.argmax(logits, axis=-1) == labels))
