"""Measurements of a stage's model: parameters, file sizes, accuracy, latency."""

import dataclasses
import gzip
import os
import tempfile

import keras
import numpy as np

import tflite_export
from kcompress._inputs import as_model_inputs


def file_sizes(directory, names=None):
    """Raw and gzipped bytes of the files in `directory` (or just `names`).

    Example:

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "zeros.bin").write_bytes(bytes(10_000))
    >>> raw, gzipped = file_sizes(folder)
    >>> raw, gzipped < 200
    (10000, True)
    """
    raw = gzipped = 0
    for name in sorted(names or os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        raw += len(data)
        gzipped += len(gzip.compress(data, compresslevel=6))
    return raw, gzipped


def weight_count(model):
    """Number of values in the model's weights: kernels, biases, embeddings, norms.

    The state kcompress's wrappers keep beside a layer's weights (quantizer
    ranges, pruning and sparsity masks, steps, cluster centroids) is left
    out, so a model under QAT or pruning counts what the float model it
    wraps counts.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> weight_count(model)
    8
    """
    from kcompress import _surgery
    from kcompress.clustering.wrapper import ClusterWeights
    from kcompress.pruning.wrapper import PruneLowMagnitude
    from kcompress.quantization.base import ConfiguredWrapper

    kinds = (ConfiguredWrapper, PruneLowMagnitude, ClusterWeights)
    wrappers = _surgery.find_layers(model, lambda layer: isinstance(layer, kinds))
    state = set()
    for wrapper in wrappers:
        inner = {id(v) for v in wrapper.layer.weights}
        state.update(id(v) for v in wrapper.weights if id(v) not in inner)
    weights = {id(v): v for v in model.weights if id(v) not in state}
    return sum(int(np.prod(v.shape)) for v in weights.values())


def accuracy(model, x, y, batch_size=64):
    """Keras test accuracy of a classifier on token arrays (a dict) or images.

    The rows are padded to whole batches (one traced predict step, not one
    more for a short last batch), and a single array goes in the structure
    the model was built with (a `keras.applications` model built on
    ``input_tensor=`` takes a list of one).
    """
    n = len(np.asarray(y))
    padding = -n % batch_size
    x = keras.tree.map_structure(lambda a: np.concatenate([a, np.repeat(a[-1:], padding, axis=0)]), x)
    predictions = model.predict(as_model_inputs(model, x), batch_size=batch_size, verbose=0)[:n]
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(y)))


def input_shapes(tokens):
    """Static per-example shapes of token inputs, for `tflite_export.convert` (``None`` for images: fixed shapes)."""
    if not isinstance(tokens, dict):
        return None
    return {name: tuple(value.shape[1:]) for name, value in tokens.items()}


def float_tflite(model, tokens, directory):
    """Converts the model to a float32 `.tflite` in `directory`; returns its path."""
    path = os.path.join(directory, "model_float32.tflite")
    tflite_export.convert(model, path, mode="float32", input_shapes=input_shapes(tokens))
    return path


def keras_row(name, model, directory, context, seconds):
    """The report row of a Keras stage, whose model is saved in `directory`.

    Size and latency are those of the model as a float32 `.tflite` (what
    would ship without quantization; a saved `.keras` also holds optimizer
    state). The QAT stage is measured by the export row instead. Under a
    backend other than TensorFlow, accuracy and the `.tflite` are measured
    by the run's TensorFlow worker on the saved ``model.keras``.
    """
    row = {"stage": name, "params": weight_count(model)}
    settings = context.config.export
    if context.worker is not None:
        measured = context.worker.request(
            action="measure",
            stage=name,
            model=os.path.join(directory, "model.keras"),
            tokens=context.tokens_file(),
            export=dataclasses.asdict(settings),
        )
    else:
        measured = measured_row(name, model, context.tokens, settings)
    row.update(accuracy=measured.pop("accuracy"), seconds=seconds, **measured)
    return row


def measured_row(name, model, data, settings):
    """Test accuracy and, but for the QAT stage, the float32 `.tflite`'s size and latency (TensorFlow backend).

    Args:
        name: The stage's name.
        model: Its Keras model.
        data: The run's `Tokens`.
        settings: The `ExportStage` (threads and runs of the latency measurement).
    """
    row = {"accuracy": accuracy(model, data.x_test, data.y_test)}
    if name == "qat":  # Its file is the export row's `.tflite`.
        row.update(size_mb=None, gzip_mb=None, latency_ms=None, size_kind="see export")
        return row
    with tempfile.TemporaryDirectory() as tmp:
        path = float_tflite(model, data.x_test, tmp)
        raw, gzipped = file_sizes(tmp, [os.path.basename(path)])
        latency = tflite_export.benchmark(path, threads=settings.threads, runs=settings.runs, warmup=3)
    row.update(
        size_mb=raw / 1e6,
        gzip_mb=gzipped / 1e6,
        size_kind="float32 .tflite",
        latency_ms=latency.median_ms,
        latency_kind="float32 .tflite",
    )
    return row


def row_line(row):
    """One line summarising a row, for progress output."""
    parts = [f"{row['params'] / 1e6:.2f}M params"]
    if row.get("size_mb") is not None:
        parts.append(f"{row['size_mb']:.1f} MB ({row['gzip_mb']:.1f} MB gzipped)")
    parts.append(f"accuracy {row['accuracy']:.3f}")
    if row.get("latency_ms") is not None:
        parts[-1] += f", {row['latency_ms']:.2f} ms ({row['latency_kind']})"
    return ", ".join(parts)
