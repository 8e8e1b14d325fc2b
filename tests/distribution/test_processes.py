"""`kcompress.distribution`: two local JAX processes train data-parallel and agree; the setup's errors."""

import keras
import numpy as np
import pytest

from kcompress import distribution
from tests.helpers import run_jax_processes


@pytest.fixture(scope="module")
def two_processes():
    """The JSON line each of two KERAS_BACKEND=jax worker processes printed."""
    return run_jax_processes("tests.distribution.two_process_worker", timeout=240)


def test_every_process_ends_with_the_same_weights_and_masks(two_processes):
    first, second = two_processes
    # Each process trained on its own half of the data...
    assert first["data"] != second["data"]
    # ...and every weight, mask and centroid is the same in both.
    for key in ("pruning", "masks", "clustering", "distillation"):
        assert first[key] == second[key], key


def test_the_techniques_did_their_work(two_processes):
    first = two_processes[0]
    # 64 rows per process, batch 8 per process: 8 steps, sparsity reaches 0.75 at step 6.
    np.testing.assert_allclose(first["sparsity"], [0.75, 0.75], atol=1e-3)
    assert first["unique"] and max(first["unique"]) <= 4


def test_only_process_0_is_chief(two_processes):
    assert [r["is_chief"] for r in two_processes] == [True, False]


def test_process_part_is_every_nth_row():
    x = np.arange(12).reshape(6, 2)
    assert distribution.process_part({"a": x})["a"].shape == (6, 2)
    assert distribution.is_chief()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow backend's error")
def test_tensorflow_backend_is_refused_with_the_upstream_bug():
    message = r"Expected the JAX backend .*keras-team/keras/issues/20585.*backend='tensorflow'"
    with pytest.raises(ValueError, match=message):
        distribution.join_processes("127.0.0.1:1234", 2, 0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_processes": 0}, "Expected num_processes >= 1. Received: num_processes=0"),
        ({"num_processes": 2, "process_id": 2}, r"Expected process_id in \[0, 2\) for num_processes=2"),
        ({"process_id": -1}, "Expected process_id >= 0"),
    ],
)
def test_bad_process_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        distribution.join_processes("127.0.0.1:1234", **arguments)
