import json
import os
import tempfile
import zipfile

import keras
import numpy as np
import pytest

from kcompress import pruning
from tests.helpers import (
    data_for,
    functional_cnn,
    mlp,
    run_serialization_test,
    save_and_load,
    tiny_bert_classifier,
)


def compile_model(model):
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("pattern", [None, pruning.NM(2, 4), pruning.Block((2, 2))])
def test_wrapper_config_round_trip(pattern):
    wrapper = pruning.PruneLowMagnitude(
        keras.layers.Dense(4), pruning.PolynomialDecay(0.0, 0.5, 0, 10), pattern=pattern
    )
    restored = run_serialization_test(wrapper)
    assert restored.pattern == wrapper.pattern
    assert restored.sparsity_schedule.get_config() == wrapper.sparsity_schedule.get_config()


@pytest.mark.backends
@pytest.mark.parametrize("make", [mlp, functional_cnn], ids=["sequential", "functional"])
def test_keras_file_round_trip_resumes_masks_and_step(make):
    model = make()
    x, y = data_for(model, n=32)
    schedule = pruning.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)
    pruned = compile_model(pruning.prune_low_magnitude(model, sparsity_schedule=schedule))
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])

    loaded = save_and_load(pruned)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)
    for old, new in zip(pruning.pruning_wrappers(pruned), pruning.pruning_wrappers(loaded)):
        assert int(new.pruning_step.numpy()) == int(old.pruning_step.numpy()) == 4
        for m_old, m_new in zip(old.masks, new.masks):
            np.testing.assert_array_equal(m_old.numpy(), m_new.numpy())

    # Continuing fit resumes at step 4 and grows the same masks.
    saved_masks = [m.numpy() for w in pruning.pruning_wrappers(loaded) for m in w.masks]
    compile_model(loaded).fit(x, y, batch_size=8, epochs=1, verbose=0,
                              callbacks=[pruning.UpdatePruningStep()])
    assert all(int(w.pruning_step.numpy()) == 8 for w in pruning.pruning_wrappers(loaded))
    for before, w_mask in zip(saved_masks, [m.numpy() for w in pruning.pruning_wrappers(loaded) for m in w.masks]):
        assert ((before == 0) <= (w_mask == 0)).all()
    for row in pruning.sparsity_report(pruning.strip_pruning(loaded)).rows:
        assert row.zeros == round(row.size * 0.75)


def test_stripped_model_loads_without_kcompress_objects():
    pruned = compile_model(pruning.prune_low_magnitude(mlp()))
    x, y = data_for(pruned)
    pruned.fit(x, y, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(pruned)
    path = os.path.join(tempfile.mkdtemp(), "stripped.keras")
    stripped.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    assert "kcompress" not in json.dumps(config)
    np.testing.assert_allclose(
        keras.models.load_model(path).predict(x, verbose=0), stripped.predict(x, verbose=0)
    )


def test_keras_hub_resumes_through_weights_checkpoint():
    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    schedule = pruning.ConstantSparsity(0.5, frequency=1)
    pruned = compile_model(pruning.prune_low_magnitude(model, sparsity_schedule=schedule))
    pruned.fit(x, y, batch_size=8, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    path = os.path.join(tempfile.mkdtemp(), "ckpt.weights.h5")
    pruned.save_weights(path)

    fresh = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
    fresh.load_weights(path)
    assert all(int(w.pruning_step.numpy()) == 2 for w in pruning.pruning_wrappers(fresh))
    for old, new in zip(pruning.pruning_wrappers(pruned), pruning.pruning_wrappers(fresh)):
        np.testing.assert_array_equal(old.masks[0].numpy(), new.masks[0].numpy())
    np.testing.assert_allclose(fresh.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)


def test_keras_hub_stripped_model_saves_and_loads():
    pruned = compile_model(pruning.prune_low_magnitude(tiny_bert_classifier()))
    x, y = data_for(pruned, n=16)
    pruned.fit(x, y, batch_size=8, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(pruned)
    loaded = save_and_load(stripped)
    assert type(loaded).__name__ == "BertTextClassifier"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), stripped.predict(x, verbose=0), atol=1e-6)
    assert pruning.sparsity_report(loaded).total_zeros == pruning.sparsity_report(stripped).total_zeros


def test_callbacks_serialize():
    assert isinstance(run_serialization_test(pruning.UpdatePruningStep()), pruning.UpdatePruningStep)
    summaries = run_serialization_test(pruning.PruningSummaries("/tmp/logs", update_freq=5))
    assert summaries.update_freq == 5


def test_keras_hub_under_pruning_round_trips_through_keras_file():
    # The keras-hub config rebuilds plain layers; the file also says where each wrapper sits.
    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    schedule = pruning.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=4, frequency=1)
    pruned = compile_model(pruning.prune_low_magnitude(model, sparsity_schedule=schedule))
    pruned.fit(x, y, batch_size=8, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    loaded = save_and_load(pruned)
    assert type(loaded).__name__ == "BertTextClassifier"
    old, new = pruning.pruning_wrappers(pruned), pruning.pruning_wrappers(loaded)
    assert len(new) == len(old) > 0
    for before, after in zip(old, new):
        assert int(after.pruning_step.numpy()) == int(before.pruning_step.numpy()) == 2
        np.testing.assert_array_equal(after.masks[0].numpy(), before.masks[0].numpy())
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)
    # Resumed from the file, the schedule goes on where it stopped.
    loaded.fit(x, y, batch_size=8, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    assert all(int(w.pruning_step.numpy()) == 4 for w in new)
    assert pruning.sparsity_report(pruning.strip_pruning(loaded)).total_zeros > pruning.sparsity_report(
        pruning.strip_pruning(pruned)
    ).total_zeros
