"""Test session setup: two logical CPUs (for MirroredStrategy), seeds, and the backend filter.

Under ``KERAS_BACKEND=jax`` (``make test-jax``) only the tests marked
``backends`` run; the others are TensorFlow-only and are skipped with that reason.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

BACKEND = keras.backend.backend()

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # Already initialized (e.g. imported twice): keep going.
    pass


def pytest_collection_modifyitems(config, items):
    """Under a backend other than TensorFlow, skips every test not marked `backends`."""
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow-only (not marked `backends`); KERAS_BACKEND={BACKEND}")
    for item in items:
        if "backends" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from seed 0 and a fresh Keras state.

    Cleared before as well as after: a module that builds layers at collection (a
    parametrize list) would otherwise shift the automatic layer names ("dense_6") of
    whichever test runs first. ``free_memory=False`` skips ``gc.collect()``, which
    costs ~0.3 s a test once a few TF graphs are alive.
    """
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def policy(request):
    """Each mixed-precision policy in turn as the global policy (a `keras.DTypePolicy`); float32 after.

    Parametrize it indirectly to pick one: ``@pytest.mark.parametrize("policy", [...], indirect=True)``.
    """
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield keras.mixed_precision.global_policy()
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def mirrored_strategy():
    """The one MirroredStrategy of the test session, over the two logical CPUs.

    Several MirroredStrategy objects in one process reuse collective instance
    keys and clash ("Shape mismatch in the collective instance"), so every
    test module shares this one.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, "conftest.py sets up two logical CPUs"
    return tf.distribute.MirroredStrategy(devices[:2])
