"""Structured pruning under the mixed-precision policies (TensorFlow): score, prune, fine-tune, shrink."""

import keras
import numpy as np

from kcompress import structured
from kcompress.structured import IterativeStructuredPruning, importance_scores
from tests.structured.shelpers import TF_HEAD_SCORES, inputs, logits, tiny_classifier


def _float32_weights(model):
    return {v.dtype for v in model.weights} == {"float32"}


def test_prune_fine_tune_and_shrink(policy):
    model = tiny_classifier()
    x, y = inputs(32)
    scores = importance_scores(model, (x, y), batches=2, batch_size=16, verbose=0)
    # The 16-bit forward pass ranks heads as float32 does.
    np.testing.assert_allclose(np.stack(scores.heads), TF_HEAD_SCORES, atol=0.01)

    small = structured.prune_transformer(model, heads=0.5, ffn=[8, 16], importance=scores)
    assert small.backbone.num_heads == [2, 2] and small.backbone.intermediate_dim == [8, 16]
    assert small.backbone.dtype_policy.name == policy.name and _float32_weights(small)
    layer = small.backbone.transformer_layers[0]
    assert tuple(layer._self_attention_layer._output_dense.kernel.shape) == (2, 4, 16)

    # Fine-tuning, with one more head per layer removed (Taylor scores inside `fit`).
    callback = IterativeStructuredPruning(heads=[1, 1], importance_data=(x, y), steps=1, batches=1, batch_size=16)
    small.compile(
        keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True
    )
    history = small.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert np.all(np.isfinite(history.history["loss"])) and _float32_weights(small)

    smaller = structured.shrink(small, callback.plan)
    assert smaller.backbone.num_heads == [1, 1] and _float32_weights(smaller)
    np.testing.assert_allclose(logits(smaller, x), logits(small, x), atol=0.05, rtol=0)
