"""Bad input gets a clear error in Keras' "Expected ... Received: ..." form."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress import structured
from kcompress.structured import Plan, importance_scores, prune_transformer, sensitivity, shrink
from tests.structured.shelpers import inputs, tiny_backbone, tiny_classifier


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


@pytest.mark.parametrize(
    "targets, message",
    [
        ({"heads": 1.2}, r"Expected heads in [0, 1). Received: heads=1.2"),
        ({"ffn": -0.1}, r"Expected ffn in [0, 1). Received: ffn=-0.1"),
        ({"heads": 1.0}, r"Expected heads in [0, 1). Received: heads=1.0"),
        ({"heads": "half"}, "Expected heads to be a fraction in [0, 1) to remove or a list of per-layer counts"),
        ({"heads": True}, "Expected heads to be a fraction"),
        ({"heads": [2]}, "Expected heads as a list with one count to keep per layer (2 layers)"),
        ({"heads": [2, 5]}, "Expected heads counts of at most the layer sizes [4, 4]"),
        ({"ffn": [2.5, 3]}, "Expected ffn to be an integer"),
        ({"layers": 3}, "Expected layers to keep between 1 and 2. Received: layers=3"),
        ({"layers": 0}, "Expected layers >= 1. Received: layers=0"),
        ({"layers": [0, 0]}, "Expected layers as a non-empty list of distinct layer indices in [0, 2)"),
        ({"layers": [2]}, "Expected layers as a non-empty list of distinct layer indices in [0, 2)"),
    ],
)
def test_bad_targets(model, targets, message):
    with pytest.raises(ValueError, match=_literal(message)):
        prune_transformer(model, importance="magnitude", **targets)


def _literal(text):
    return re.escape(text)


def test_removing_every_head_of_a_layer_says_to_drop_it(model):
    with pytest.raises(
        ValueError,
        match=_literal(
            "Expected at least one head left in every kept layer; to remove "
            "layer 1 entirely, drop it with layers= (e.g. layers=[0])"
        ),
    ):
        prune_transformer(model, heads=[4, 0], importance="magnitude")
    with pytest.raises(ValueError, match="drop it with layers="):
        prune_transformer(model, heads=0.9, importance="magnitude")  # rounds to all 4 heads
    with pytest.raises(ValueError, match="Expected at least one feed-forward unit left"):
        prune_transformer(model, ffn=[0, 3], importance="magnitude")


def test_every_head_of_a_dropped_layer_is_fine(model):
    small = prune_transformer(model, heads=[2, 0], layers=[0], importance="magnitude")
    assert small.backbone.num_heads == [2]


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
        lambda: keras.layers.Dense(2),
        lambda: "bert",
    ],
)
def test_unsupported_model_says_what_is_supported(make):
    with pytest.raises(
        ValueError,
        match="Expected a supported transformer: keras_hub.models.BertTextClassifier or keras_hub.models.BertBackbone",
    ):
        prune_transformer(make(), heads=0.5, importance="magnitude")


def test_too_few_importance_batches(model):
    x, y = inputs(40)
    with pytest.raises(
        ValueError,
        match=_literal(
            "Expected importance_data with at least 4 batches (of "
            "batch_size=32 for arrays); pass more data or ask for fewer "
            "batches. Received: batches=2"
        ),
    ):
        prune_transformer(model, heads=0.5, importance_data=(x, y))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    with pytest.raises(ValueError, match="Received: batches=2"):
        importance_scores(model, dataset, batches=3, verbose=0)
    with pytest.raises(ValueError, match="Expected batches >= 1"):
        importance_scores(model, (x, y), batches=0, verbose=0)


def test_taylor_needs_data_and_labels(model):
    x, _ = inputs(64)
    with pytest.raises(
        ValueError, match="Expected importance_data .* for importance='taylor', or importance='magnitude'"
    ):
        prune_transformer(model, heads=0.5)
    with pytest.raises(ValueError, match="Expected importance_data with labels"):
        importance_scores(model, tf.data.Dataset.from_tensor_slices(x).batch(32), batches=1, verbose=0)
    with pytest.raises(ValueError, match="Expected a loss=.* on a backbone"):
        importance_scores(tiny_backbone(), (x, np.zeros(64)), batches=1, verbose=0)
    with pytest.raises(ValueError, match=r"Expected method in \('taylor', 'magnitude'\)"):
        importance_scores(model, method="random")


def test_only_layer_dropping_needs_no_data(model):
    assert prune_transformer(model, layers=1).backbone.num_layers == 1


def test_bad_plans(model):
    with pytest.raises(ValueError, match="Expected a kcompress.structured.Plan"):
        shrink(model, {"heads": 0.5})
    with pytest.raises(ValueError, match="Expected at least one kept unit in heads"):
        Plan(layers=(0,), heads=((),), ffn=((0,),))
    with pytest.raises(ValueError, match=_literal("Expected heads indices of layer 0 in [0, 4)")):
        shrink(model, Plan(layers=(0,), heads=((4,),), ffn=((0,),)))
    with pytest.raises(ValueError, match="Expected a plan that keeps all 2 layers to mask"):
        structured.mask_transformer(model, Plan(layers=(0,), heads=((0,),), ffn=((0,),)))


def test_sensitivity_errors(model):
    x, y = inputs(16)
    with pytest.raises(ValueError, match=r"Expected levels in \(0, 1\)"):
        sensitivity(model, (x, y), levels=[0.0], importance="magnitude", verbose=0)
    with pytest.raises(ValueError, match=r"Expected levels in \[0, 1\)"):
        sensitivity(model, (x, y), levels=[1.5], importance="magnitude", verbose=0)
    with pytest.raises(ValueError, match="Expected a BertTextClassifier"):
        sensitivity(tiny_backbone(), (x, y), importance="magnitude", verbose=0)
    with pytest.raises(ValueError, match="Expected a path in an existing directory"):
        sensitivity(model, (x, y), levels=[0.5], importance="magnitude", plot="/no/such/dir/p.png", verbose=0)


def test_budget_errors(model):
    x, y = inputs(16)
    table = sensitivity(model, (x, y), levels=[0.5], importance="magnitude", verbose=0)
    with pytest.raises(ValueError, match="Expected max_params and/or max_latency_ms"):
        structured.prune_to_budget(model, table, importance="magnitude")
    with pytest.raises(ValueError, match="Expected input_shapes for a latency budget"):
        structured.prune_to_budget(model, table, max_latency_ms=5.0, importance="magnitude")
    with pytest.raises(ValueError, match="Expected max_params >= 1"):
        structured.prune_to_budget(model, table, max_params=0, importance="magnitude")
    other = tiny_classifier(num_heads=2)
    with pytest.raises(ValueError, match="Expected a sensitivity table measured on this model"):
        structured.prune_to_budget(other, table, max_params=100, importance="magnitude")
