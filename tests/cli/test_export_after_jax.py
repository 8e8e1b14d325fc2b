"""A model trained under the JAX backend exports with `kcompress export` in a TensorFlow-backend process."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kcompress import pruning, quantization
from tests.helpers import mlp

pytestmark = [
    pytest.mark.backends,
    pytest.mark.skipif(keras.backend.backend() != "jax", reason="exports a JAX-trained model (under make test-jax)"),
]


def test_pruned_qat_model_trained_under_jax_exports_to_int8(tmp_path):
    x = np.random.default_rng(0).standard_normal((64, 16)).astype("float32")
    y = np.random.default_rng(1).integers(0, 2, 64)
    pruned = pruning.prune_low_magnitude(mlp(), pruning.ConstantSparsity(0.5, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=16, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    qat = quantization.quantize_model(pruning.strip_pruning(pruned))
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, batch_size=16, verbose=0)
    qat.save(tmp_path / "qat.keras")

    out = tmp_path / "qat_int8.tflite"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "kcompress.cli", "export", "--model", str(tmp_path / "qat.keras")]
    done = subprocess.run(
        [*command, "--mode", "int8", "--out", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_file() and f"{out}: int8" in done.stdout
    assert "FULLY_CONNECTED | 2 | int8, int32 | int8" in done.stdout and "(full integer)" in done.stdout
