"""Clustering under the mixed-precision policies (TensorFlow): train, strip, float32 weights."""

import numpy as np

from kcompress import clustering
from tests.clustering.chelpers import fit, named_mlp, outputs
from tests.helpers import data_for, save_and_load


def test_cluster_fit_strip(policy):
    model = named_mlp()
    assert model.layers[0].compute_dtype == policy.compute_dtype
    x, y = data_for(model, n=16)
    clustered = clustering.cluster_weights(model, 4, layer_configs={"head": {"gradient_aggregation": "mean"}})
    wrappers = clustering.clustering_wrappers(clustered)
    start = [w.centroids[0].numpy().copy() for w in wrappers]
    fit(clustered, x, y, steps=2)
    assert all(not np.allclose(a, w.centroids[0].numpy()) for a, w in zip(start, wrappers))
    assert all(np.isfinite(w.centroids[0].numpy()).all() for w in wrappers)

    stripped = clustering.strip_clustering(clustered)
    assert {v.dtype for v in stripped.weights} == {"float32"}
    assert stripped.layers[0].compute_dtype == policy.compute_dtype
    counts = clustering.unique_values(stripped)
    assert len(counts) == 3 and max(counts.values()) <= 4, counts
    np.testing.assert_array_equal(outputs(stripped, x), outputs(clustered, x))
    loaded = save_and_load(stripped)
    assert {v.dtype for v in loaded.weights} == {"float32"} and clustering.unique_values(loaded) == counts
