"""``kcompress export --sparse``: a float32 file with sparse weights, and only float32."""

import keras
import numpy as np

from tests.cli.clihelpers import assert_usage_error
from tests.helpers import mobilenet_like

L = keras.layers


def test_sparse_writes_densify_ops(cli, tmp_path):
    keras.utils.set_random_seed(0)
    model = mobilenet_like()
    for name in ("pw_1", "pw_2", "pw_3"):
        kernel = model.get_layer(name).kernel
        kernel.assign(np.where(np.arange(kernel.shape[-1]) % 4 == 0, keras.ops.convert_to_numpy(kernel), 0.0))
    model.save(tmp_path / "cnn.keras")
    run = cli("export", "--model", tmp_path / "cnn.keras", "--sparse")
    assert run.code == 0, run.err
    assert (tmp_path / "cnn_float32_sparse.tflite").is_file()
    assert ": float32 sparse, " in run.out and "DENSIFY" in run.out


def test_sparse_needs_float32(cli, mlp_keras, tmp_path):
    run = cli("export", "--model", mlp_keras, "--sparse", "--mode=dynamic", "--out", tmp_path / "m.tflite")
    assert_usage_error(run, "Expected --mode=float32 with --sparse. Received: --mode=dynamic")
    assert not (tmp_path / "m.tflite").exists()
