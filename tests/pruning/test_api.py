import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompress import pruning
from tests.helpers import MODEL_KINDS, bert_preprocessor, data_for, mlp, tiny_bert_classifier


def fit_pruned(model, schedule, pattern=None, layers=None, epochs=1, batch_size=8, n=32):
    pruned = pruning.prune_low_magnitude(
        model, sparsity_schedule=schedule, pattern=pattern, layers=layers
    )
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data_for(model, n=n)
    pruned.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return pruned, x


@pytest.mark.backends
@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_model_kind_prunes_strips_and_keeps_its_type(kind):
    model = MODEL_KINDS[kind]()
    before = [w.copy() for w in model.get_weights()]
    schedule = pruning.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=3, frequency=1)
    pruned, x = fit_pruned(model, schedule)
    stripped = pruning.strip_pruning(pruned)

    assert type(stripped) is type(model)
    assert not pruning.pruning_wrappers(stripped)
    # Every prunable kernel reached exactly the scheduled sparsity.
    report = pruning.sparsity_report(stripped)
    kernel_rows = [r for r in report.rows if not r.path.endswith("embeddings")]
    assert kernel_rows
    for row in kernel_rows:
        assert row.zeros == round(row.size * 0.5), row
    # Stripping changes nothing the model computes.
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5
    )
    # The input model is left unchanged.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_keras_hub_prunes_nested_attention_and_ffn_but_not_embeddings():
    pruned = pruning.prune_low_magnitude(tiny_bert_classifier())
    paths = {v.path for w in pruning.pruning_wrappers(pruned) for v in w.pruned_variables}
    for part in ("query", "key", "value", "attention_output",
                 "feedforward_intermediate_dense", "feedforward_output_dense"):
        assert any(f"transformer_layer_0/self_attention_layer/{part}/kernel" == p
                   or f"transformer_layer_0/{part}/kernel" == p for p in paths), part
    assert not any("embedding" in p or "bias" in p or "norm" in p for p in paths)


def test_embeddings_are_pruned_only_when_asked():
    pruned = pruning.prune_low_magnitude(tiny_bert_classifier(), layers=[keras.layers.Embedding])
    paths = {v.path for w in pruning.pruning_wrappers(pruned) for v in w.pruned_variables}
    assert paths and all(p.endswith("embeddings") for p in paths)


def test_layer_filter_by_name_glob_and_callable():
    model = tiny_bert_classifier()
    by_name = pruning.prune_low_magnitude(model, layers="feedforward_*")
    assert {w.layer.name for w in pruning.pruning_wrappers(by_name)} == {
        "feedforward_intermediate_dense", "feedforward_output_dense"}
    assert len(pruning.pruning_wrappers(by_name)) == 4
    by_callable = pruning.prune_low_magnitude(model, layers=lambda l: l.name == "logits")
    assert [w.layer.name for w in pruning.pruning_wrappers(by_callable)] == ["logits"]


@given(
    sparsity=st.floats(0.0, 0.95),
    hidden=st.sampled_from([3, 8, 17]),
    inputs=st.sampled_from([5, 16]),
)
@settings(max_examples=8, deadline=None)
def test_exact_sparsity_after_strip_over_shapes_and_sparsities(sparsity, hidden, inputs):
    keras.backend.clear_session()
    model = mlp(input_dim=inputs, hidden=hidden)
    pruned, _ = fit_pruned(model, pruning.ConstantSparsity(sparsity, frequency=1), n=16)
    for row in pruning.sparsity_report(pruning.strip_pruning(pruned)).rows:
        assert row.zeros == round(row.size * sparsity)


@pytest.mark.backends
def test_nm_pattern_gives_exactly_n_per_group_after_fit():
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8), keras.layers.Dense(4)])
    pruned, _ = fit_pruned(model, pruning.ConstantSparsity(0.5, frequency=1), pattern=pruning.NM(2, 4))
    stripped = pruning.strip_pruning(pruned)
    for layer in stripped.layers:
        kernel = layer.kernel.numpy()
        assert (np.count_nonzero(kernel.T.reshape(-1, 4), axis=-1) == 2).all()
    assert {r.pattern for r in pruning.sparsity_report(stripped).rows} == {"NM(2, 4)"}


@pytest.mark.backends
def test_block_pattern_on_conv_and_dense():
    model = keras.Sequential([keras.Input((6, 6, 4)), keras.layers.Conv2D(8, 3),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    pruned, _ = fit_pruned(model, pruning.ConstantSparsity(0.5, frequency=1),
                           pattern=pruning.Block((4, 4)))
    for row in pruning.sparsity_report(pruning.strip_pruning(pruned)).rows:
        assert row.zeros == row.size // 2


@pytest.mark.backends
def test_masks_only_grow_during_fit():
    model = mlp()
    schedule = pruning.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=12, frequency=2)
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
    history = []

    class RecordMasks(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            # Through `self.model`: under JAX that syncs the training state into the variables.
            history.append([m.numpy().copy() for w in pruning.pruning_wrappers(self.model) for m in w.masks])

    pruned.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((64, 16)).astype("float32")
    pruned.fit(x, np.zeros((64, 2)), batch_size=4, verbose=0,
               callbacks=[pruning.UpdatePruningStep(), RecordMasks()])
    for before, after in zip(history, history[1:]):
        for m0, m1 in zip(before, after):
            assert ((m0 == 0) <= (m1 == 0)).all()
    assert 1 - history[-1][0].mean() == pytest.approx(0.9, abs=1e-3)


def test_prune_a_single_layer_returns_a_wrapper():
    layer = pruning.prune_low_magnitude(keras.layers.Dense(4))
    assert isinstance(layer, pruning.PruneLowMagnitude)
    model = keras.Sequential([keras.Input((8,)), layer])
    assert model.output_shape == (None, 4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: pruning.prune_low_magnitude(m, layers="no_such_layer"),
         "Expected layers to match at least one prunable layer"),
        (lambda m: pruning.prune_low_magnitude(m, layers=[keras.layers.LayerNormalization]),
         "Expected layer classes kcompress can prune"),
        (lambda m: pruning.prune_low_magnitude(m, layers="*layer_norm*"),
         "Expected layers kcompress can prune"),
        (lambda m: pruning.prune_low_magnitude(m, layers=[3]),
         "Expected layers to be None, a callable, or a list"),
        (lambda m: pruning.prune_low_magnitude(m, pattern="2:4"),
         "Expected pattern to be None, pruning.NM(n, m) or pruning.Block(shape)"),
        (lambda m: pruning.prune_low_magnitude(m, pattern=pruning.NM(2, 3)),
         "to be divisible by m=3"),
        (lambda m: pruning.prune_low_magnitude(m, sparsity_schedule="half"),
         "Expected a PruningSchedule"),
        (lambda m: pruning.prune_low_magnitude(pruning.prune_low_magnitude(m)),
         "Expected a model not already under pruning"),
        (lambda m: pruning.prune_low_magnitude("model"), "Expected a keras.Model or keras.layers.Layer"),
        (lambda m: pruning.PruneLowMagnitude(keras.layers.LayerNormalization()),
         "Expected a layer kcompress can prune"),
    ],
)
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError) as info:
        call(tiny_bert_classifier())
    assert message in str(info.value)


@pytest.mark.backends
def test_fit_without_update_pruning_step_fails_at_start():
    pruned = pruning.prune_low_magnitude(mlp())
    pruned.compile("adam", "mse")
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        pruned.fit(np.zeros((8, 16)), np.zeros((8, 2)), verbose=0)


def test_update_pruning_step_on_a_model_without_wrappers_fails():
    model = mlp()
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="Expected a model with pruning wrappers"):
        model.fit(np.zeros((8, 16)), np.zeros((8, 2)), verbose=0,
                  callbacks=[pruning.UpdatePruningStep()])


def test_subclassed_model_that_drops_training_flag_is_reported():
    @keras.saving.register_keras_serializable(package="kcompress_tests")
    class NoTraining(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = NoTraining()
    model(np.zeros((1, 4)))
    pruned = pruning.prune_low_magnitude(model)
    pruned.compile("adam", "mse")
    with pytest.raises(ValueError, match="does not pass `training`"):
        pruned.fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0,
                   callbacks=[pruning.UpdatePruningStep()])


def test_keras_hub_task_with_preprocessor_keeps_its_vocabulary():
    words = ["a", "moving", "funny", "film", "dull", "and", "far", "too", "long", ","]
    model = tiny_bert_classifier(16, preprocessor=bert_preprocessor(words, seq_len=16))
    texts = np.array(["a moving, funny film", "dull and far too long"])
    pruned = pruning.prune_low_magnitude(model)
    # Assets (the tokenizer's vocabulary) are copied with the model.
    np.testing.assert_allclose(pruned.predict(texts, verbose=0), model.predict(texts, verbose=0), atol=1e-5)
