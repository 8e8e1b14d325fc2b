import numpy as np
import tensorflow as tf

from kcompress.distillation import Distiller
from tests.distillation.conftest import bert, labels, tokens


def test_mirrored_strategy_with_cache_matches_one_device(mirrored_strategy):
    x, y = tokens(32), labels(32)
    with mirrored_strategy.scope():
        teacher = bert(layers=4, width=16, heads=4, seed=0)
        student = bert(layers=2, width=8, heads=2, seed=1)
        distiller = Distiller(teacher, student, alpha=0.5, hidden="uniform", attention="uniform", cache=True)
        distiller.compile(optimizer="sgd", metrics=["accuracy"])
    single = Distiller(bert(4, 16, 4, seed=0), bert(2, 8, 2, seed=1), alpha=0.5, hidden="uniform", attention="uniform")
    single.compile(optimizer="sgd")
    for name, projection in distiller.projections.items():
        single.projections[name].set_weights(projection.get_weights())
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    mirrored = distiller.evaluate(dataset, verbose=0, return_dict=True)
    one = single.evaluate(dataset, verbose=0, return_dict=True)
    np.testing.assert_allclose(mirrored["loss"], one["loss"], rtol=1e-4)
    history = distiller.fit(dataset, epochs=2, verbose=0).history
    assert distiller.cache.size == 32
    assert history["loss"][1] < history["loss"][0]
