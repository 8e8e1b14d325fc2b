import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompress import clustering
from kcompress.clustering.kmeans import INITIALIZERS
from tests.clustering.chelpers import centroids, fit, named_mlp, outputs
from tests.helpers import MODEL_KINDS, data_for, is_same_kind, tiny_bert_classifier


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_cluster_fit_strip_every_model_kind(kind):
    model = MODEL_KINDS[kind]()
    x, y = data_for(model, n=16)
    before = [np.array(w) for w in model.get_weights()]

    clustered = clustering.cluster_weights(model, number_of_clusters=4)
    wrappers = clustering.clustering_wrappers(clustered)
    assert wrappers and is_same_kind(clustered, model)
    start = centroids(clustered)
    fit(clustered, x, y)
    assert any(not np.allclose(a, b) for name in start for a, b in zip(start[name], centroids(clustered)[name]))

    stripped = clustering.strip_clustering(clustered)
    assert not clustering.clustering_wrappers(stripped) and type(stripped) is type(model)
    counts = clustering.unique_values(stripped)
    assert counts and max(counts.values()) <= 4, counts
    np.testing.assert_allclose(outputs(stripped, x), outputs(clustered, x), atol=1e-5)
    assert len(stripped.trainable_weights) == len(model.trainable_weights)
    # The input model is untouched.
    assert not clustering.clustering_wrappers(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert all(v.trainable for v in model.weights if v.name in ("kernel", "embeddings"))


def test_training_moves_centroids_only():
    model = named_mlp()
    x, y = data_for(model, n=32)
    clustered = clustering.cluster_weights(model, number_of_clusters=4)
    wrapper = clustering.clustering_wrappers(clustered)[0]
    kernel = np.array(wrapper.layer.kernel.numpy())
    assignments = np.array(wrapper.assignments[0].numpy())
    trainable = {id(v) for v in clustered.trainable_weights}
    assert id(wrapper.layer.kernel) not in trainable and id(wrapper.centroids[0]) in trainable
    fit(clustered, x, y, steps=3, run_eagerly=False)  # The compiled train step.
    np.testing.assert_array_equal(wrapper.layer.kernel.numpy(), kernel)
    np.testing.assert_array_equal(wrapper.assignments[0].numpy(), assignments)


def test_no_missing_gradient_warning(recwarn):
    model = named_mlp()
    x, y = data_for(model, n=16)
    fit(clustering.cluster_weights(model, 4), x, y, steps=1)
    assert not [w for w in recwarn if "Gradients do not exist" in str(w.message)]


@settings(max_examples=6, deadline=None)
@given(k=st.integers(2, 12), init=st.sampled_from(sorted(INITIALIZERS)), steps=st.integers(0, 2))
def test_property_strip_leaves_at_most_k_values_per_kernel(k, init, steps):
    keras.utils.set_random_seed(k)
    model = named_mlp(input_dim=8, hidden=16)
    x, y = data_for(model, n=16)
    clustered = clustering.cluster_weights(model, number_of_clusters=k, init=init)
    if steps:
        fit(clustered, x, y, steps=steps, learning_rate=0.1)
    counts = clustering.unique_values(clustering.strip_clustering(clustered))
    assert len(counts) == 3 and all(n <= k for n in counts.values()), counts


def test_layers_by_glob_and_class():
    model = named_mlp()
    only_hidden = clustering.cluster_weights(model, 4, layers="hidden*")
    assert sorted(w.layer.name for w in clustering.clustering_wrappers(only_hidden)) == ["hidden", "hidden_2"]
    by_callable = clustering.cluster_weights(model, 4, layers=lambda layer: layer.name == "head")
    assert [w.layer.name for w in clustering.clustering_wrappers(by_callable)] == ["head"]
    by_class = clustering.cluster_weights(model, 4, layers=[keras.layers.Dense])
    assert len(clustering.clustering_wrappers(by_class)) == 3


def test_layer_configs_override_and_skip():
    model = named_mlp()
    clustered = clustering.cluster_weights(
        model, 8, layer_configs={"head": {"number_of_clusters": 2, "init": "linear"}, "hidden_2": None}
    )
    by_name = {w.layer.name: w for w in clustering.clustering_wrappers(clustered)}
    assert sorted(by_name) == ["head", "hidden"]
    assert (by_name["head"].number_of_clusters, by_name["head"].init) == (2, "linear")
    assert by_name["hidden"].number_of_clusters == 8
    counts = clustering.unique_values(clustering.strip_clustering(clustered))
    by_layer = {path.split("/")[-2]: n for path, n in counts.items()}
    assert by_layer == {"hidden": 8, "hidden_2": 32 * 32, "head": 2}


def test_keras_hub_nested_layers_and_embeddings():
    model = tiny_bert_classifier()
    clustered = clustering.cluster_weights(model, 4)
    names = {w.layer.name for w in clustering.clustering_wrappers(clustered)}
    assert {"query", "key", "value", "attention_output", "feedforward_intermediate_dense"} <= names
    assert {"token_embedding", "segment_embedding", "logits"} <= names
    assert "position_embedding" not in names  # keras-hub's PositionEmbedding is not an Embedding.


def test_preserve_sparsity_keeps_pruned_zeros():
    model = named_mlp()
    kernel = model.layers[0].kernel
    kernel.assign(np.where(np.arange(kernel.shape[1]) % 2 == 0, 0.0, kernel.numpy()))
    x, y = data_for(model, n=32)
    clustered = fit(clustering.cluster_weights(model, 4), x, y, steps=3, learning_rate=0.5)
    assert clustering.clustering_wrappers(clustered)[0].keep_zeros == ["kernel"]
    stripped = clustering.strip_clustering(clustered).layers[0].kernel.numpy()
    assert (stripped[:, ::2] == 0).all() and len(np.unique(stripped)) <= 4
    off = fit(clustering.cluster_weights(model, 4, preserve_sparsity=False), x, y, steps=3, learning_rate=0.5)
    assert not clustering.clustering_wrappers(off)[0].keep_zeros


def test_cluster_transformer_skips_embeddings_and_head_by_default():
    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    trained = []
    small = clustering.cluster_transformer(model, 4, fine_tune=lambda m: trained.append(fit(m, x, y, steps=1)))
    assert trained and type(small) is type(model)
    counts = clustering.unique_values(small)
    assert counts["transformer_layer_0/self_attention_layer/query/kernel"] <= 4
    assert counts["pooled_dense/kernel"] <= 4
    assert counts["token_embedding/embeddings"] > 4 and counts["logits/kernel"] > 4
    everything = clustering.unique_values(
        clustering.cluster_transformer(model, 4, include_embeddings=True, include_head=True)
    )
    assert max(everything.values()) <= 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"number_of_clusters": 1}, "Expected number_of_clusters >= 2. Received: number_of_clusters=1"),
        ({"number_of_clusters": 4.0}, "Expected number_of_clusters to be an integer. Received: number_of_clusters=4.0"),
        ({"number_of_clusters": True}, "Expected number_of_clusters to be an integer"),
        ({"init": "random"}, "Expected init in ('kmeans++', 'linear', 'density'). Received: init='random'"),
        ({"gradient_aggregation": "max"}, "Expected gradient_aggregation in ('sum', 'mean')"),
        (
            {"layers": "nothing_*"},
            "Expected layer names or glob patterns that match layers of 'mlp'. Received: layers='nothing_*'",
        ),
        ({"layers": [keras.layers.LayerNormalization]}, "Expected layer classes kcompress can cluster"),
        ({"layers": 3}, "Expected layers to be None, a callable, or a list"),
        ({"layers": lambda layer: False}, "Expected layers to match at least one layer of model 'mlp'"),
        ({"layer_configs": {"nothing_*": None}}, "Expected layer_configs patterns that match layers of 'mlp'"),
        ({"layer_configs": {"head": {"clusters": 3}}}, "Expected layer_configs values None or dicts with keys"),
        ({"layer_configs": {"head": {"number_of_clusters": 1}}}, "Expected number_of_clusters >= 2"),
        ({"layer_configs": ["head"]}, "Expected layer_configs to be a dict"),
        ({"layer_configs": {"head": 0}}, "Expected layer_configs values None or dicts with keys"),
        ({"preserve_sparsity": "yes"}, "Expected preserve_sparsity to be a bool"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as error:
        clustering.cluster_weights(named_mlp(), **kwargs)
    assert message in str(error.value)


def test_bad_models():
    with pytest.raises(ValueError, match="Expected a keras.Model"):
        clustering.cluster_weights(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="Expected a built model"):
        clustering.cluster_weights(keras.Sequential([keras.layers.Dense(2)]))
    clustered = clustering.cluster_weights(named_mlp(), 4)
    with pytest.raises(ValueError, match="Expected a model not already clustered"):
        clustering.cluster_weights(clustered)
    with pytest.raises(ValueError, match="Expected a keras.Model"):
        clustering.strip_clustering("model")
    with pytest.raises(ValueError, match="Expected no `layers` argument"):
        clustering.cluster_transformer(named_mlp(), layers="head")
