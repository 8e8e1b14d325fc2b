"""Helpers of cnn_edge.py: the two MobileNetV2s, weight transfer to tf_keras, the tfmot child process.

Importable from both sides: it sets no environment and imports Keras only
inside functions (the caller passes the Keras module it runs: Keras 3, or
tf_keras in `_cnn_edge_tfmot.py`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

CLASSES = 10
_CHILD = Path(__file__).with_name("_cnn_edge_tfmot.py")


def build(kind, alpha, size, momentum, keras):
    """A MobileNetV2 for 10 classes in `keras` (Keras 3 or tf_keras), random weights.

    Args:
        kind: ``"mobilenet_v2"``: ``keras.applications.MobileNetV2`` with
            ``Rescaling(1 / 127.5, offset=-1)`` in front (raw [0, 255]
            pixels in, softmax out); ``"xnnpack_ready"``:
            `sparse_latency.xnnpack_ready_mobilenet_v2` (inputs in [-1, 1],
            logits out).
        alpha: Width multiplier.
        size: Image height and width.
        momentum: Momentum of every BatchNormalization (the applications'
            0.999 leaves the moving statistics near their initial values
            after a few hundred steps).
        keras: The Keras module to build with.

    Returns:
        The uncompiled model.
    """
    from sparse_latency import xnnpack_ready_mobilenet_v2

    if kind == "mobilenet_v2":
        inputs = keras.Input((size, size, 3))
        scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
        model = keras.applications.MobileNetV2(input_tensor=scaled, alpha=alpha, weights=None, classes=CLASSES)
    else:
        model = xnnpack_ready_mobilenet_v2(alpha, size, CLASSES, keras=keras)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
    return model


def save_for_twin(path, model, x, y):
    """Writes training data and `model`'s weights, layer by layer, to an ``.npz`` for `load_weights`."""
    arrays = {"x": x, "y": y}
    for i, layer in enumerate(layer for layer in model.layers if layer.weights):
        for j, weight in enumerate(layer.get_weights()):
            arrays[f"w_{i}_{j}"] = weight
    np.savez(path, **arrays)


def load_weights(model, data):
    """Sets the weights `save_for_twin` wrote into the twin `model` (same layers, same order)."""
    layers = [layer for layer in model.layers if layer.weights]
    for i, layer in enumerate(layers):
        layer.set_weights([data[f"w_{i}_{j}"] for j in range(len(layer.weights))])
    if f"w_{len(layers)}_0" in data.files:
        raise ValueError("the twin has fewer layers with weights than the saved model")


def run_tfmot(task, data_path, out, timeout=3600, **flags):
    """Runs `_cnn_edge_tfmot.py` (``task`` ``"qat"`` or ``"prune"``) in a tf_keras child; returns its JSON."""
    from _subprocess import _tail

    command = [sys.executable, str(_CHILD), "--task", task, "--data", str(data_path), "--out", str(out)]
    for name, value in flags.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"tfmot {task} failed ({done.returncode}); stderr tail:\n{_tail(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])
