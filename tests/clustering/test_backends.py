"""Clustering under every Keras backend (`make test-jax` runs these under JAX too): train, strip, save."""

import keras
import numpy as np
import pytest

from kcompress import clustering
from tests.clustering.chelpers import fit, outputs
from tests.helpers import data_for, save_and_load

pytestmark = pytest.mark.backends

# A few steps run faster eagerly under TensorFlow (its compiled step is tested elsewhere); under JAX the
# compiled step is the one to test (a `jax.jit` of a stateless step), and eager JAX is slower anyway.
EAGER = keras.backend.backend() == "tensorflow"


def _numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))


def _cnn():
    """Every clusterable family but Embedding: Conv2D, DepthwiseConv2D, SeparableConv2D and Dense."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = layers.SeparableConv2D(8, 1, name="separable")(layers.DepthwiseConv2D(3, name="depthwise")(x))
    return keras.Model(inputs, layers.Dense(2, name="head")(layers.GlobalAveragePooling2D()(x)))


@pytest.fixture(scope="module")
def trained():
    """A clustered CNN (pruned zeros in its conv kernel, mean gradients in its head) before and after `fit`."""
    keras.utils.set_random_seed(0)
    model = _cnn()
    kernel = model.get_layer("conv").kernel
    kernel.assign(np.where(np.abs(_numpy(kernel)) < 0.1, 0.0, _numpy(kernel)))
    x, y = data_for(model, n=16)
    clustered = clustering.cluster_weights(
        model, number_of_clusters=3, layer_configs={"head": {"gradient_aggregation": "mean"}}
    )
    wrapper = clustering.clustering_wrappers(clustered)[0]
    assert wrapper.keep_zeros == ["kernel"]
    before = {
        name: _numpy(variable)
        for name, variable in [
            ("centroids", wrapper.centroids[0]),
            ("assignments", wrapper.assignments[0]),
            ("kernel", wrapper.layer.kernel),
            ("bias", wrapper.layer.bias),
        ]
    }
    fit(clustered, x, y, steps=3, run_eagerly=EAGER)
    return clustered, wrapper, before, x


def test_fit_trains_centroids_and_biases_only(trained):
    _, wrapper, before, _ = trained
    assert not np.allclose(_numpy(wrapper.centroids[0]), before["centroids"])
    assert not np.allclose(_numpy(wrapper.layer.bias), before["bias"])  # Read through the wrapper's scope.
    np.testing.assert_array_equal(_numpy(wrapper.layer.kernel), before["kernel"])
    np.testing.assert_array_equal(_numpy(wrapper.assignments[0]), before["assignments"])


def test_strip_keeps_at_most_k_values_the_zeros_and_the_outputs(trained):
    clustered, _, before, x = trained
    stripped = clustering.strip_clustering(clustered)
    assert not clustering.clustering_wrappers(stripped)
    counts = clustering.unique_values(stripped)
    assert len(counts) == 5 and max(counts.values()) <= 3, counts
    assert np.all(_numpy(stripped.get_layer("conv").kernel)[before["kernel"] == 0] == 0)
    np.testing.assert_allclose(outputs(stripped, x), outputs(clustered, x), atol=1e-5)
    np.testing.assert_allclose(outputs(save_and_load(stripped), x), outputs(stripped, x), atol=1e-6)


def test_clustered_model_round_trips_through_keras_file(trained):
    clustered, _, _, x = trained
    loaded = save_and_load(clustered)
    assert [w.gradient_aggregation for w in clustering.clustering_wrappers(loaded)] == ["sum"] * 3 + ["mean"]
    np.testing.assert_allclose(outputs(loaded, x), outputs(clustered, x), atol=1e-6)


def _encoder_classifier():
    """keras-hub's BERT layer (a `TransformerEncoder`) under a classification head: small enough to jit fast."""
    import keras_hub

    inputs = keras.Input((6, 16))
    x = keras_hub.layers.TransformerEncoder(intermediate_dim=16, num_heads=2, name="encoder")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(x)))


def test_cluster_transformer_fine_tunes_a_keras_hub_encoder():
    model = _encoder_classifier()
    x, y = data_for(model, n=16)
    small = clustering.cluster_transformer(model, 4, fine_tune=lambda m: fit(m, x, y, steps=2, run_eagerly=EAGER))
    counts = clustering.unique_values(small)
    for name in ("query", "key", "value", "attention_output"):
        assert counts[f"encoder/self_attention_layer/{name}/kernel"] <= 4
    assert counts["encoder/feedforward_intermediate_dense/kernel"] <= 4
    assert counts["head/kernel"] <= 4  # No backbone: every Dense counts as encoder.
