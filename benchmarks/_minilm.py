"""What the MiniLM benchmarks share: tokens, a fine-tuned MiniLM, `.tflite` accuracy."""

import time

import keras
import numpy as np


def tokens(preprocessor, texts, batch=256):
    """Preprocesses texts into int32 ``token_ids``/``segment_ids``/``padding_mask`` arrays."""
    batches = [preprocessor(list(texts[i : i + batch])) for i in range(0, len(texts), batch)]
    return {k: np.concatenate([np.asarray(b[k]) for b in batches]).astype("int32") for k in batches[0]}


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


def compile_classifier(model, learning_rate):
    """Adam + sparse cross-entropy on logits + accuracy, as keras-hub compiles tasks."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
