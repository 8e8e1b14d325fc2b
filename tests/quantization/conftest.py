"""Quantization tests: the root conftest's per-test seed, without a full garbage collection.

The root `_seed` fixture ends every test with ``keras.backend.clear_session()``,
whose ``gc.collect()`` costs ~0.3 s once a few TF graphs are alive: a third of
this directory's run time. Same seed and Keras state reset, no collection.
"""

import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    # Also before: a module that builds layers at collection (a parametrize list) would shift
    # the automatic layer names ("dense_6") of whichever test runs first.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
