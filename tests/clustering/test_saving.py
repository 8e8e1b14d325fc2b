import os

import keras
import numpy as np

from kcompress import clustering
from tests.clustering.chelpers import centroids, fit, named_mlp, outputs
from tests.helpers import data_for, functional_cnn, save_and_load, tiny_bert_classifier


def assignments(model):
    return [np.array(a.numpy()) for w in clustering.clustering_wrappers(model) for a in w.assignments]


def test_clustered_sequential_round_trips_and_resumes_fit():
    model = named_mlp()
    x, y = data_for(model, n=32)
    clustered = fit(clustering.cluster_weights(model, 4, init="linear", gradient_aggregation="mean"), x, y)
    loaded = save_and_load(clustered)
    wrappers = clustering.clustering_wrappers(loaded)
    assert [w.gradient_aggregation for w in wrappers] == ["mean"] * 3
    np.testing.assert_allclose(outputs(loaded, x), outputs(clustered, x), atol=1e-6)
    for a, b in zip(assignments(loaded), assignments(clustered)):
        np.testing.assert_array_equal(a, b)
    # The frozen kernels stay frozen after loading, and training goes on from the saved centroids.
    assert not any(w.layer.kernel.trainable for w in wrappers)
    fit(loaded, x, y, steps=2)
    for a, b in zip(assignments(loaded), assignments(clustered)):
        np.testing.assert_array_equal(a, b)
    assert max(clustering.unique_values(clustering.strip_clustering(loaded)).values()) <= 4


def test_clustered_functional_cnn_with_pinned_zeros_round_trips():
    model = functional_cnn()
    conv = model.layers[1]
    conv.kernel.assign(np.where(np.abs(conv.kernel.numpy()) < 0.1, 0.0, conv.kernel.numpy()))
    x, _ = data_for(model, n=8)
    clustered = clustering.cluster_weights(model, 3)
    assert [w.keep_zeros for w in clustering.clustering_wrappers(clustered)][0] == ["kernel"]
    loaded = save_and_load(clustered)
    assert [w.keep_zeros for w in clustering.clustering_wrappers(loaded)][0] == ["kernel"]
    np.testing.assert_allclose(outputs(loaded, x), outputs(clustered, x), atol=1e-5)


def test_stripped_keras_hub_model_saves_and_loads():
    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    stripped = clustering.strip_clustering(fit(clustering.cluster_weights(model, 4), x, y, steps=1))
    loaded = save_and_load(stripped)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(outputs(loaded, x), outputs(stripped, x), atol=1e-5)
    assert clustering.unique_values(loaded) == clustering.unique_values(stripped)


def test_clustered_keras_hub_model_resumes_from_save_weights(tmp_path):
    """A keras-hub model under clustering does not load from `.keras` (its config rebuilds plain layers):
    save its weights and load them into `cluster_weights(original)`."""
    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    clustered = fit(clustering.cluster_weights(model, 4), x, y, steps=1)
    path = os.path.join(tmp_path, "clustered.weights.h5")
    clustered.save_weights(path)
    resumed = clustering.cluster_weights(model, 4)
    resumed.load_weights(path)
    np.testing.assert_allclose(outputs(resumed, x), outputs(clustered, x), atol=1e-6)
    for name, values in centroids(clustered).items():
        for a, b in zip(values, centroids(resumed)[name]):
            np.testing.assert_array_equal(a, b)


def test_stripped_layer_from_a_wrapper():
    wrapper = clustering.ClusterWeights(keras.layers.Dense(4), number_of_clusters=2)
    wrapper(np.ones((1, 3), "float32"))
    layer = clustering.strip_clustering(wrapper)
    assert isinstance(layer, keras.layers.Dense) and layer.kernel.trainable
    assert len(np.unique(layer.kernel.numpy())) <= 2
