"""IterativeStructuredPruning: gradual masks during fit, then a physical shrink."""

import keras
import numpy as np
import pytest

from kcompress import structured
from kcompress.structured import IterativeStructuredPruning
from tests.structured.shelpers import inputs, logits, tiny_classifier


def _fit(model, callback, epochs, x, y):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(True), run_eagerly=True
    )
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[callback])


class _Record(keras.callbacks.Callback):
    def __init__(self, pruning):
        super().__init__()
        self.pruning = pruning
        self.sizes = []

    def on_epoch_end(self, epoch, logs=None):
        self.sizes.append((self.pruning.plan.num_heads, self.pruning.plan.intermediate_dim))


def test_prunes_in_steps_and_masks_stay_zero():
    model = tiny_classifier()
    x, y = inputs()
    pruning = IterativeStructuredPruning(heads=0.5, ffn=[8, 16], importance_data=(x, y), steps=2, batches=2)
    record = _Record(pruning)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(True), run_eagerly=True
    )
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[pruning, record])
    assert record.sizes == [((3, 3), (20, 24)), ((2, 2), (8, 16)), ((2, 2), (8, 16))]
    for encoder, kept_heads, kept_units in zip(model.backbone.transformer_layers, pruning.plan.heads, pruning.plan.ffn):
        output = np.asarray(encoder._self_attention_layer._output_dense.kernel)
        dropped = np.setdiff1d(np.arange(4), kept_heads)
        assert np.all(output[dropped] == 0) and np.all(np.any(output[list(kept_heads)] != 0, axis=(1, 2)))
        ffn_out = np.asarray(encoder._feedforward_output_dense.kernel)
        assert np.all(ffn_out[np.setdiff1d(np.arange(32), kept_units)] == 0)


def test_later_steps_keep_a_subset():
    model = tiny_classifier()
    x, y = inputs()
    pruning = IterativeStructuredPruning(heads=[1, 1], ffn=0.75, importance="magnitude", steps=3)
    plans = []

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            plans.append(pruning.plan)

    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(True), run_eagerly=True
    )
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[pruning, Keep()])
    for earlier, later in zip(plans, plans[1:]):
        for a, b in zip(earlier.heads + earlier.ffn, later.heads + later.ffn):
            assert set(b) <= set(a)
    assert plans[-1].num_heads == (1, 1) and plans[-1].intermediate_dim == (8, 8)


def test_shrink_after_fit_has_the_same_outputs():
    model = tiny_classifier()
    x, y = inputs()
    pruning = IterativeStructuredPruning(heads=0.5, ffn=0.5, importance="magnitude", steps=1)
    _fit(model, pruning, 1, x, y)
    small = structured.shrink(model, pruning.plan)
    np.testing.assert_allclose(logits(small, x), logits(model, x), atol=1e-5, rtol=0)
    assert small.count_params() < model.count_params()


def test_frequency_and_begin_epoch():
    model = tiny_classifier()
    x, y = inputs(32)
    pruning = IterativeStructuredPruning(heads=0.5, importance="magnitude", steps=2, frequency=2, begin_epoch=1)
    record = _Record(pruning)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True), run_eagerly=True)
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[pruning, record])
    assert [heads for heads, _ in record.sizes] == [(4, 4), (3, 3), (3, 3), (2, 2)]


def test_errors():
    with pytest.raises(ValueError, match="Expected importance_data for importance='taylor'"):
        IterativeStructuredPruning(heads=0.5)
    model = tiny_classifier()
    x, y = inputs(16)
    with pytest.raises(ValueError, match=r"Expected heads in \[0, 1\). Received: heads=1.5"):
        _fit(model, IterativeStructuredPruning(heads=1.5, importance="magnitude"), 1, x, y)
