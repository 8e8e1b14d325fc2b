import keras
import numpy as np
import pytest

from kcompress import pruning
from tests.helpers import data_for, mlp, tiny_bert_classifier


@pytest.fixture
def strategy(mirrored_strategy):
    return mirrored_strategy


@pytest.mark.parametrize("make", [mlp, tiny_bert_classifier], ids=["mlp", "keras_hub_bert"])
def test_pruning_under_mirrored_strategy_on_two_cpus(make, strategy):
    assert strategy.num_replicas_in_sync == 2
    schedule = pruning.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=2, frequency=1)
    with strategy.scope():
        model = make()
        pruned = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
        pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data_for(model, n=32)
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(pruned)
    for row in pruning.sparsity_report(stripped).rows:
        if not row.path.endswith("embeddings"):
            assert row.zeros == round(row.size * 0.5), row
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
