"""prune_transformer / shrink: outputs, sizes, parameter arithmetic, layer dropping, training."""

import keras
import keras_hub
import numpy as np
import pytest

from kcompress import structured
from kcompress.structured import PrunedBertBackbone, importance_scores, mask_transformer, shrink
from tests.structured.shelpers import SEQ, inputs, logits, plan_for, tiny_backbone, tiny_classifier

TARGETS = {
    "heads half": {"heads": 0.5},
    "ffn half": {"ffn": 0.5},
    "both": {"heads": 0.5, "ffn": 0.5},
    "per-layer counts": {"heads": [3, 1], "ffn": [7, 20]},
}


@pytest.mark.parametrize("method", ["taylor", "magnitude"])
@pytest.mark.parametrize("targets", TARGETS.values(), ids=TARGETS.keys())
def test_shrink_equals_masked_original(method, targets):
    model = tiny_classifier()
    x, y = inputs()
    scores = importance_scores(model, (x, y), method=method, batches=2, verbose=0)
    small = structured.prune_transformer(model, importance=scores, **targets)
    reference = mask_transformer(model, plan_for(model, scores, **targets))
    np.testing.assert_allclose(logits(small, x), logits(reference, x), atol=1e-5, rtol=0)
    # The check means something: masking changes the outputs.
    assert np.abs(logits(reference, x) - logits(model, x)).max() > 1e-2


def test_sequence_output_of_backbone_equals_masked_original():
    backbone = tiny_backbone()
    x, _ = inputs()
    scores = importance_scores(backbone, method="magnitude")
    plan = plan_for(backbone, scores, heads=[1, 3], ffn=0.75)
    small = shrink(backbone, plan)
    assert isinstance(small, PrunedBertBackbone) and isinstance(small, keras_hub.models.BertBackbone)
    expected = mask_transformer(backbone, plan)(x)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(np.asarray(small(x)[name]), np.asarray(expected[name]), atol=1e-5, rtol=0)


def _layer_parameters(hidden, heads, key_dim, units):
    attention = 3 * (hidden * heads * key_dim + heads * key_dim) + heads * key_dim * hidden + hidden
    feed_forward = hidden * units + units + units * hidden + hidden
    return attention + feed_forward + 2 * 2 * hidden  # two LayerNorms


def test_parameter_count_matches_arithmetic():
    model = tiny_classifier()
    small = structured.prune_transformer(model, heads=[3, 1], ffn=[7, 20], importance="magnitude")
    hidden, key_dim = 16, 4
    embeddings = 100 * hidden + SEQ * hidden + 2 * hidden + 2 * hidden  # token, position, segment, LayerNorm
    head = hidden * hidden + hidden + hidden * 2 + 2  # pooler + logits
    expected = embeddings + head + _layer_parameters(hidden, 3, key_dim, 7) + _layer_parameters(hidden, 1, key_dim, 20)
    assert small.count_params() == expected
    assert model.count_params() == embeddings + head + 2 * _layer_parameters(hidden, 4, key_dim, 32)


def test_per_layer_sizes_differ_and_head_size_stays():
    model = tiny_classifier()
    small = structured.prune_transformer(model, heads=[3, 1], ffn=[7, 20], importance="magnitude")
    layers = small.backbone.transformer_layers
    assert [layer._self_attention_layer.num_heads for layer in layers] == [3, 1]
    assert [layer._self_attention_layer.key_dim for layer in layers] == [4, 4]
    assert [layer._feedforward_intermediate_dense.units for layer in layers] == [7, 20]
    assert tuple(layers[1]._self_attention_layer._query_dense.kernel.shape) == (16, 1, 4)


def test_kept_units_are_the_most_important():
    model = tiny_classifier()
    scores = importance_scores(model, method="magnitude")
    plan = plan_for(model, scores, heads=0.5, ffn=0.25)
    for layer, kept in enumerate(plan.heads):
        assert set(kept) == set(np.argsort(-scores.heads[layer])[:2])
    assert plan.intermediate_dim == (24, 24)


def _skip_layers(model, x, keep):
    """The original classifier's logits with only the layers in `keep` run."""
    backbone = model.backbone
    tokens = backbone.token_embedding(x["token_ids"])
    hidden = backbone.embeddings_add(
        (tokens, backbone.position_embedding(tokens), backbone.segment_embedding(x["segment_ids"]))
    )
    hidden = backbone.embeddings_layer_norm(hidden)
    for i in keep:
        hidden = backbone.transformer_layers[i](hidden, padding_mask=x["padding_mask"])
    return np.asarray(model.output_dense(backbone.pooled_dense(hidden[:, 0, :])))


@pytest.mark.parametrize("layers, keep", [(1, [0]), ([1], [1]), ([0, 2], [0, 2])])
def test_layer_dropping(layers, keep):
    model = tiny_classifier(num_layers=3)
    x, _ = inputs()
    small = structured.prune_transformer(model, layers=layers)
    assert small.backbone.num_layers == len(keep)
    np.testing.assert_allclose(logits(small, x), _skip_layers(model, x, keep), atol=1e-5, rtol=0)


def test_layer_dropping_with_heads_counts_per_original_layer():
    model = tiny_classifier(num_layers=3)
    small = structured.prune_transformer(model, layers=[0, 2], heads=[2, 4, 1], importance="magnitude")
    assert small.backbone.num_heads == [2, 1]


def test_pruning_twice():
    model = tiny_classifier()
    x, y = inputs()
    once = structured.prune_transformer(model, heads=0.5, ffn=0.5, importance_data=(x, y), batches=2, verbose=0)
    twice = structured.prune_transformer(once, heads=[1, 2], importance_data=(x, y), batches=2, verbose=0)
    assert twice.backbone.num_heads == [1, 2] and twice.backbone.intermediate_dim == [16, 16]


def test_input_model_unchanged_and_preprocessor_kept():
    model = tiny_classifier()
    before = [np.array(w) for w in model.get_weights()]
    small = structured.prune_transformer(model, heads=0.5, importance="magnitude")
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert isinstance(small, keras_hub.models.BertTextClassifier)
    assert small.preprocessor is model.preprocessor


def test_shrunk_model_trains_with_fit():
    model = tiny_classifier()
    x, y = inputs()
    small = structured.prune_transformer(model, heads=0.5, ffn=0.5, importance="magnitude")
    small.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
    before = logits(small, x)
    history = small.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.abs(logits(small, x) - before).max() > 0
