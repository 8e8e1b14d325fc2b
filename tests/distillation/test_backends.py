"""The Distiller under every backend `make test-jax` covers: training, `.keras` files, the teacher cache."""

import keras
import numpy as np
import pytest

from kcompress.distillation import Distiller, LossInputs, SoftLabelKL
from tests.distillation.conftest import bert, labels, tokens
from tests.helpers import mlp, save_and_load

pytestmark = pytest.mark.backends

SAMPLES = 64


def mlp_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(SAMPLES, 16)).astype("float32"), rng.integers(0, 2, SAMPLES)


def mlp_pair():
    keras.utils.set_random_seed(0)
    return mlp(hidden=32), mlp(hidden=4)


def soft_kl(teacher, student, x):
    """Mean temperature-2 KL from the teacher's predictions to the student's."""
    logits = {
        "teacher": {"logits": teacher.predict(x, verbose=0)},
        "student": {"logits": student.predict(x, verbose=0)},
    }
    return float(np.mean(keras.ops.convert_to_numpy(SoftLabelKL(2.0)(LossInputs(**logits)))))


@pytest.fixture(scope="module")
def trained_mlp():
    """An MLP Distiller after 4 epochs, with the teacher-student KL before training."""
    teacher, student = mlp_pair()
    x, y = mlp_data()
    before = soft_kl(teacher, student, x)
    distiller = Distiller(teacher, student, alpha=0.8, temperature=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(2e-2))
    history = distiller.fit(x, y, epochs=4, batch_size=16, verbose=0).history
    return distiller, history, before


def test_mlp_student_moves_toward_the_teacher(trained_mlp):
    distiller, history, before = trained_mlp
    assert set(history) == {"loss", "soft_label_kl", "hard_label_ce"}
    assert history["soft_label_kl"][-1] < 0.8 * history["soft_label_kl"][0]
    assert soft_kl(distiller.teacher, distiller.student, mlp_data()[0]) < 0.8 * before


def test_mlp_distiller_keras_file_round_trip(trained_mlp):
    distiller = trained_mlp[0]
    loaded = save_and_load(distiller, "distiller.keras")
    assert isinstance(loaded, Distiller)
    x, y = mlp_data()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6)
    loaded.compile(optimizer="adam")
    expected = distiller.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0, return_dict=True)["loss"], expected["loss"], rtol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="TensorFlow: test_distiller.py and test_saving.py train and round-trip the keras-hub pair",
)
def test_bert_pair_with_intermediate_losses_trains_and_round_trips():
    teacher, student = bert(layers=2, width=16, heads=2, seed=0), bert(layers=1, width=8, heads=2, seed=1)
    distiller = Distiller(teacher, student, alpha=0.5, hidden="uniform", attention="uniform", embedding=True)
    assert sorted(distiller.projections) == ["projection_embedding", "projection_hidden_0"]
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    teacher_before = [np.copy(w) for w in teacher.get_weights()]
    history = distiller.fit(tokens(16), labels(16), epochs=3, batch_size=8, verbose=0).history
    assert {"hidden_mse", "attention_kl", "embedding_mse", "soft_label_kl", "hard_label_ce"} < set(history)
    assert all(np.isfinite(values).all() for values in history.values())
    assert history["hidden_mse"][-1] < history["hidden_mse"][0]
    assert history["embedding_mse"][-1] < history["embedding_mse"][0]
    assert history["attention_kl"][0] > 0.0  # The two models' recorded attention maps differ.
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    loaded = save_and_load(distiller, "distiller.keras")
    x = tokens(4, seed=2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-5)
    for name, projection in distiller.projections.items():
        for a, b in zip(projection.get_weights(), loaded.projections[name].get_weights()):
            np.testing.assert_array_equal(a, b)


def test_teacher_cache_is_read_inside_the_train_step():
    teacher, student = mlp_pair()
    x, y = mlp_data()
    cached = Distiller(teacher, student, alpha=0.5, cache=True)
    cached.compile(optimizer="adam")
    plain = Distiller(teacher, student, alpha=0.5)
    plain.compile(optimizer="adam")
    assert cached.cache_teacher(x, batch_size=16, verbose=0) == SAMPLES
    reference = plain.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        cached.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"], reference["loss"], rtol=1e-5
    )
    # Break the teacher: only the cached outputs still give the same losses.
    weights = teacher.get_weights()
    teacher.set_weights([np.zeros_like(w) for w in weights])
    logs = cached.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["soft_label_kl"], reference["soft_label_kl"], rtol=1e-5)
    assert not np.isclose(
        plain.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["soft_label_kl"], reference["soft_label_kl"]
    )
    # A batch with an uncached example runs the (broken) teacher instead.
    new = x[:16] + 1.0
    np.testing.assert_allclose(
        cached.evaluate(new, y[:16], verbose=0, return_dict=True)["loss"],
        plain.evaluate(new, y[:16], verbose=0, return_dict=True)["loss"],
        rtol=1e-5,
    )
    teacher.set_weights(weights)
    history = cached.fit(x, y, epochs=3, batch_size=16, verbose=0).history
    assert cached.cache.size == SAMPLES
    assert history["soft_label_kl"][-1] < history["soft_label_kl"][0]


def test_teacher_cache_refuses_other_backends(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(
        ValueError, match=r"Expected a Keras backend in \('tensorflow', 'jax'\).*Received: backend='torch'"
    ):
        Distiller(*mlp_pair(), cache=True)
