"""A float32 teacher distilled into a mixed-precision student (TensorFlow backend)."""

import keras
import numpy as np
import pytest

from kcompress.distillation import Distiller
from tests.helpers import functional_attention, mlp

POLICIES = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@pytest.fixture(params=sorted(POLICIES))
def policy(request):
    """The policy's name; the global policy is float32 again after the test."""
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def distill(teacher, make_student, policy, x, y, epochs, **kwargs):
    """Builds the student and the Distiller under `policy`, trains; returns (distiller, history)."""
    keras.mixed_precision.set_global_policy(policy)
    distiller = Distiller(teacher, make_student(), **kwargs)
    distiller.compile(optimizer=keras.optimizers.Adam(2e-2))
    history = distiller.fit(x, y, epochs=epochs, batch_size=16, verbose=0).history
    return distiller, history


def test_mlp_student_with_a_teacher_cache(policy):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 16)).astype("float32"), rng.integers(0, 2, 64)
    teacher = mlp(hidden=32)
    distiller, history = distill(teacher, lambda: mlp(hidden=8), policy, x, y, epochs=4, alpha=0.8, cache=True)
    assert distiller.student.layers[0].compute_dtype == POLICIES[policy]
    assert teacher.layers[0].compute_dtype == "float32"
    if policy == "mixed_float16":
        assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(np.isfinite(values).all() for values in history.values())
    assert history["soft_label_kl"][-1] < history["soft_label_kl"][0]
    loss = distiller.compute_loss(x[:16], y[:16], training=False)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_attention_student_with_intermediate_losses(policy):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 6, 16)).astype("float32"), rng.integers(0, 2, 32)
    teacher = functional_attention()
    distiller, history = distill(
        teacher, functional_attention, policy, x, y, epochs=3, alpha=0.5, hidden="uniform", attention="uniform"
    )
    assert distiller.student.layers[1].compute_dtype == POLICIES[policy]
    assert {"hidden_mse", "attention_kl"} < set(history)
    assert all(np.isfinite(values).all() for values in history.values())
    assert history["hidden_mse"][-1] < history["hidden_mse"][0]
