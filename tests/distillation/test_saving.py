import keras
import numpy as np

from kcompress.distillation import Distiller, TeacherCache
from tests.distillation.conftest import labels, tokens
from tests.helpers import save_and_load


def trained(teacher, student, **kwargs):
    distiller = Distiller(teacher, student, alpha=0.5, hidden="uniform", attention="last", **kwargs)
    distiller.compile(optimizer="adam")
    distiller.fit(tokens(16), labels(16), batch_size=8, verbose=0)
    return distiller


def test_student_saves_and_loads_as_a_plain_model(teacher, student):
    distiller = trained(teacher, student)
    loaded = save_and_load(distiller.student)
    assert type(loaded) is type(student)
    x = tokens(4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-5)
    assert "call" not in vars(loaded.backbone.transformer_layers[0])


def test_distiller_config_round_trip(teacher, student, tmp_path):
    distiller = Distiller(
        teacher, student, alpha=0.3, temperature=5.0, hidden=[(1, 0), (3, 1)], cache=TeacherCache(tmp_path, "float16")
    )
    restored = Distiller.from_config(distiller.get_config())
    assert [loss.get_config() for loss in restored.distillation_losses] == [
        loss.get_config() for loss in distiller.distillation_losses
    ]
    assert restored.cache.get_config() == distiller.cache.get_config()
    assert restored._pairs == distiller._pairs
    assert restored.get_config()["losses"] == distiller.get_config()["losses"]


def test_distiller_keras_file_round_trip(teacher, student):
    distiller = trained(teacher, student)
    loaded = save_and_load(distiller, "distiller.keras")
    assert isinstance(loaded, Distiller)
    x = tokens(4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-5)
    for name, projection in distiller.projections.items():
        for a, b in zip(projection.get_weights(), loaded.projections[name].get_weights()):
            np.testing.assert_allclose(a, b)
    loaded.compile(optimizer="adam")
    loaded.fit(tokens(8), labels(8), verbose=0)
    keras.backend.clear_session()
