"""`convert(..., sparse=True)`: sparse weights in the file, the same outputs as the dense file."""

import os

import keras
import numpy as np
import pytest

import tflite_export
from kcompress import pruning
from tests.helpers import mobilenet_like
from tflite_export._runner import Runner, make_interpreter, read_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A MobileNet-like CNN with its 1x1 kernels pruned to 80% by XNNPackSparse, converted dense and sparse."""
    keras.utils.set_random_seed(0)
    pruned = pruning.prune_low_magnitude(
        mobilenet_like(), pruning.ConstantSparsity(0.8), policy=pruning.XNNPackSparse()
    )
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    pruned.fit(x, np.zeros((2, 4)), verbose=0, callbacks=[pruning.UpdatePruningStep()])
    model = pruning.strip_pruning(pruned)
    folder = tmp_path_factory.mktemp("sparse")
    dense = tflite_export.convert(model, os.path.join(folder, "dense.tflite"))
    sparse = tflite_export.convert(model, os.path.join(folder, "sparse.tflite"), sparse=True)
    return model, dense, sparse


def sparse_tensors(path):
    interpreter = make_interpreter(read_model(path), delegates=False)
    return [t for t in interpreter.get_tensor_details() if t.get("sparsity_parameters")]


def test_the_sparse_file_stores_the_pruned_kernels_sparse(files):
    _, dense, sparse = files
    assert sparse.sparse and str(sparse).splitlines()[0].split(": ")[1].startswith("float32 sparse, ")
    assert len(sparse_tensors(sparse.path)) == 3 and not sparse_tensors(dense.path)  # pw_1, pw_2, pw_3.
    assert sparse.model.op_counts()["DENSIFY"] == 3 and "DENSIFY" not in dense.model.op_counts()
    assert sparse.size_bytes < dense.size_bytes


def test_sparse_and_dense_files_compute_the_same(files):
    model, dense, sparse = files
    x = np.random.default_rng(1).normal(size=(1, 16, 16, 3)).astype("float32")
    (want,) = Runner(dense.path).run(x).values()
    (got,) = Runner(sparse.path).run(x).values()
    np.testing.assert_allclose(got.value, want.value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.value, keras.ops.convert_to_numpy(model(x)), rtol=1e-4, atol=1e-4)


def test_sparse_needs_float32(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Expected sparse=True only with mode='float32'.*Received: mode='dynamic'"):
        tflite_export.convert(model, tmp_path / "m.tflite", mode="dynamic", sparse=True)
    with pytest.raises(ValueError, match="Expected sparse to be True or False. Received: sparse='yes'"):
        tflite_export.convert(model, tmp_path / "m.tflite", sparse="yes")
    assert not (tmp_path / "m.tflite").exists()
