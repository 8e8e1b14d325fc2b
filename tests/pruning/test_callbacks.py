import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress import pruning
from tests.helpers import data_for, mlp


def test_pruning_summaries_write_sparsity_scalars(tmp_path):
    pruned = pruning.prune_low_magnitude(mlp(), pruning.ConstantSparsity(0.5, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data_for(pruned)
    pruned.fit(x, y, epochs=2, verbose=0, callbacks=[
        pruning.UpdatePruningStep(), pruning.PruningSummaries(tmp_path)])
    tags = {}
    for name in os.listdir(tmp_path):
        for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(
                    float(tf.make_ndarray(value.tensor)))
    assert tags["sparsity/target"] == [0.5, 0.5]
    kernel_tags = [t for t in tags if t.endswith("/kernel")]
    assert len(kernel_tags) == 2
    assert all(v == pytest.approx(0.5) for t in kernel_tags for v in tags[t])


def test_pruning_summaries_rejects_bad_update_freq():
    with pytest.raises(ValueError, match="Expected update_freq to be 'epoch' or a positive integer"):
        pruning.PruningSummaries("/tmp/x", update_freq=0)


@pytest.mark.backends
def test_step_counts_batches_across_fits():
    pruned = pruning.prune_low_magnitude(mlp(), pruning.ConstantSparsity(0.5, frequency=1))
    pruned.compile("adam", "mse")
    x = np.zeros((32, 16), "float32")
    for expected in (4, 8):
        pruned.fit(x, np.zeros((32, 2)), batch_size=8, verbose=0,
                   callbacks=[pruning.UpdatePruningStep()])
        steps = {int(layer.pruning_step.numpy()) for layer in pruning.pruning_wrappers(pruned)}
        assert steps == {expected}


def test_sparsity_report_table_and_dict():
    pruned = pruning.prune_low_magnitude(mlp(), pruning.ConstantSparsity(0.5, frequency=1))
    pruned.compile("adam", "mse")
    pruned.fit(np.ones((8, 16)), np.zeros((8, 2)), verbose=0, callbacks=[pruning.UpdatePruningStep()])
    report = pruning.sparsity_report(pruning.strip_pruning(pruned))
    text = str(report)
    assert "total" in text and "50.0%" in text
    as_dict = report.to_dict()
    assert as_dict["total_zeros"] == (16 * 32 + 32 * 2) // 2
    assert len(as_dict["rows"]) == 2
    with pytest.raises(ValueError, match="Expected a Keras model or layer"):
        pruning.sparsity_report("model")
