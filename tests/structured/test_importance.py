"""Importance scores: magnitude by hand, Taylor shapes and properties, data handling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress.structured import Plan, importance_scores, mask_transformer
from tests.structured.shelpers import inputs, tiny_backbone, tiny_classifier


def test_magnitude_matches_hand_computation():
    model = tiny_classifier()
    scores = importance_scores(model, method="magnitude")
    encoder = model.backbone.transformer_layers[1]
    attention = encoder._self_attention_layer
    q, k, v = (np.asarray(getattr(attention, n).kernel) for n in ("_query_dense", "_key_dense", "_value_dense"))
    o = np.asarray(attention._output_dense.kernel)
    head = 2
    expected = np.sqrt(sum(np.sum(w[:, head, :] ** 2) for w in (q, k, v)) + np.sum(o[head] ** 2))
    assert scores.heads[1][head] == pytest.approx(expected, rel=1e-6)
    inner = np.asarray(encoder._feedforward_intermediate_dense.kernel)
    outer = np.asarray(encoder._feedforward_output_dense.kernel)
    unit = 5
    assert scores.ffn[1][unit] == pytest.approx(np.sqrt(np.sum(inner[:, unit] ** 2) + np.sum(outer[unit] ** 2)))
    assert scores.method == "magnitude" and scores.examples == 0


def test_taylor_shapes_and_signs():
    model = tiny_classifier()
    x, y = inputs()
    scores = importance_scores(model, (x, y), batches=2, batch_size=32, verbose=0)
    assert [s.shape for s in scores.heads] == [(4,), (4,)]
    assert [s.shape for s in scores.ffn] == [(32,), (32,)]
    assert scores.examples == 64 and scores.method == "taylor"
    for s in scores.heads + scores.ffn:
        assert np.all(s >= 0) and np.any(s > 0)


def _taylor_by_finite_difference(model, x, y, layer, head, epsilon=1e-3):
    """d loss / d gate of one head, per example, by scaling the head's output kernel slice."""
    kernel = model.backbone.transformer_layers[layer]._self_attention_layer._output_dense.kernel
    original = np.asarray(kernel).copy()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    values = []
    for scale in (1 + epsilon, 1 - epsilon):
        scaled = original.copy()
        scaled[head] *= scale
        kernel.assign(scaled)
        values.append(np.asarray(loss(y, model(x, training=False))))
    kernel.assign(original)
    return np.mean(np.abs((values[0] - values[1]) / (2 * epsilon)))


def test_taylor_head_score_is_mean_absolute_gate_gradient():
    model = tiny_classifier()
    x, y = inputs(32)
    scores = importance_scores(model, (x, y), batches=1, batch_size=32, verbose=0)
    for layer, head in ((0, 1), (1, 3)):
        expected = _taylor_by_finite_difference(model, x, y, layer, head)
        assert scores.heads[layer][head] == pytest.approx(expected, rel=2e-2, abs=1e-5)


def test_taylor_of_a_masked_head_is_zero():
    model = tiny_classifier()
    x, y = inputs()
    plan = Plan(layers=(0, 1), heads=((0, 1, 3), (0, 1, 2, 3)), ffn=(tuple(range(32)), tuple(range(30))))
    masked = mask_transformer(model, plan)
    scores = importance_scores(masked, (x, y), batches=2, verbose=0)
    assert scores.heads[0][2] == 0.0 and scores.heads[0][0] > 0
    assert np.all(scores.ffn[1][30:] == 0.0)


def test_dataset_and_arrays_give_the_same_scores():
    model = tiny_classifier()
    x, y = inputs()
    from_arrays = importance_scores(model, (x, y), batches=2, batch_size=32, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    from_dataset = importance_scores(model, dataset, batches=2, verbose=0)
    for a, b in zip(from_arrays.heads + from_arrays.ffn, from_dataset.heads + from_dataset.ffn):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_taylor_on_backbone_with_a_loss():
    backbone = tiny_backbone()
    x, _ = inputs(16)
    target = np.zeros((16, 16), "float32")

    def loss(y_true, outputs):
        return keras.ops.sum((outputs["pooled_output"] - y_true) ** 2)

    scores = importance_scores(backbone, (x, target), batches=1, loss=loss, verbose=0)
    assert scores.heads[0].shape == (4,) and np.all(scores.heads[0] > 0)
