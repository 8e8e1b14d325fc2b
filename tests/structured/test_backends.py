"""Structured pruning under every Keras backend (`make test-jax` runs these under JAX too).

Taylor scores and the sensitivity table are checked against the numbers
TensorFlow gives on the same weights: every backend must find them.
"""

import keras
import numpy as np
import pytest

from kcompress import structured
from kcompress.structured import IterativeStructuredPruning, importance_scores, mask_transformer
from tests.helpers import save_and_load
from tests.structured.shelpers import TF_FFN_SCORE_SUMS, TF_HEAD_SCORES, inputs, logits, plan_for, tiny_classifier

pytestmark = pytest.mark.backends

# (layer, kind, kept, accuracy) with half of one layer's heads or units masked; baseline 0.5625.
TF_SENSITIVITY = [(0, "heads", 2, 0.46875), (0, "ffn", 16, 0.5), (1, "heads", 2, 0.5), (1, "ffn", 16, 0.53125)]
TARGETS = {"heads": 0.5, "ffn": [8, 16]}
# Two steps run faster eagerly under TensorFlow (its compiled step is tested elsewhere); under JAX the
# compiled step is the one to test, and eager JAX is slower anyway.
EAGER = keras.backend.backend() == "tensorflow"


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(0)
    model = tiny_classifier()
    x, y = inputs(32)
    scores = importance_scores(model, (x, y), batches=2, batch_size=16, verbose=0)
    return model, x, y, scores


@pytest.fixture(scope="module")
def pruned(setup):
    """The pruned model and its logits, before any training."""
    model, x, _, scores = setup
    small = structured.prune_transformer(model, importance=scores, **TARGETS)
    return small, logits(small, x)


@pytest.fixture(scope="module")
def fine_tuned(setup, pruned):
    """The pruned model after 2 steps of `fit`, pruning one more head per layer as it goes."""
    x, y = setup[1:3]
    small = pruned[0]
    callback = IterativeStructuredPruning(heads=[1, 1], importance="magnitude", steps=1)
    small.compile(
        keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=EAGER
    )
    history = small.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    return small, callback, history


def test_taylor_scores_are_tensorflows(setup):
    scores = setup[3]
    assert scores.examples == 32
    np.testing.assert_allclose(np.stack(scores.heads), TF_HEAD_SCORES, atol=1e-4)
    np.testing.assert_allclose([s.sum() for s in scores.ffn], TF_FFN_SCORE_SUMS, rtol=1e-4)


def test_pruned_heads_and_units_are_gone(setup, pruned):
    model, x, _, scores = setup
    small, before = pruned
    assert small.backbone.num_heads == [2, 2] and small.backbone.intermediate_dim == [8, 16]
    for layer, units in zip(small.backbone.transformer_layers, (8, 16)):
        attention = layer._self_attention_layer
        assert tuple(attention._query_dense.kernel.shape) == (16, 2, 4)
        assert tuple(attention._output_dense.kernel.shape) == (2, 4, 16)
        assert tuple(layer._feedforward_intermediate_dense.kernel.shape) == (16, units)
        assert tuple(layer._feedforward_output_dense.kernel.shape) == (units, 16)
    reference = mask_transformer(model, plan_for(model, scores, **TARGETS))
    np.testing.assert_allclose(before, logits(reference, x), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def table(setup):
    model, x, y, scores = setup
    before = [np.array(w) for w in model.get_weights()]
    table = structured.sensitivity(model, (x, y), levels=[0.5], importance=scores, batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # Restored.
    return table


def test_sensitivity_table_is_tensorflows(table):
    assert table.baseline == 0.5625
    assert [(r["layer"], r["kind"], r["kept"], r["accuracy"]) for r in table.rows] == TF_SENSITIVITY


def test_parameter_budget(setup, table):
    model, _, _, scores = setup
    budget = model.count_params() - 1000
    result = structured.prune_to_budget(model, table, max_params=budget, importance=scores, verbose=0)
    assert result.parameters <= budget and result.model.count_params() == result.parameters


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="The latency budget works under TensorFlow.")
def test_latency_budget_needs_tensorflow(setup, table):
    with pytest.raises(ValueError, match="Expected the TensorFlow backend for a latency budget"):
        structured.prune_to_budget(setup[0], table, max_latency_ms=1.0, importance=setup[3], input_shapes={})


def test_fine_tuning_with_iterative_pruning(setup, pruned, fine_tuned):
    small, callback, history = fine_tuned
    x = setup[1]
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.abs(logits(small, x) - pruned[1]).max() > 0
    assert callback.plan.num_heads == (1, 1)
    for layer, kept in zip(small.backbone.transformer_layers, callback.plan.heads):
        output = keras.ops.convert_to_numpy(layer._self_attention_layer._output_dense.kernel)
        assert np.all(output[1 - kept[0]] == 0)  # Kept silent after every step.
    assert structured.shrink(small, callback.plan).backbone.num_heads == [1, 1]


def test_keras_file_round_trip(fine_tuned, setup):
    small, x = fine_tuned[0], setup[1]
    loaded = save_and_load(small)
    assert loaded.backbone.num_heads == [2, 2] and loaded.backbone.intermediate_dim == [8, 16]
    np.testing.assert_allclose(logits(loaded, x), logits(small, x), atol=1e-6, rtol=0)
