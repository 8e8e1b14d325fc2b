"""Structured-pruning tests: the root conftest's per-test seed, without a full garbage collection."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
