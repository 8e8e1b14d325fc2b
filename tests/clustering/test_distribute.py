import numpy as np

from kcompress import clustering
from tests.clustering.chelpers import centroids, named_mlp
from tests.helpers import data_for


def test_fit_under_mirrored_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = named_mlp()
        clustered = clustering.cluster_weights(model, 4)
        clustered.compile("adam", "sparse_categorical_crossentropy")
    x, y = data_for(model, n=32)
    start = centroids(clustered)
    clustered.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = centroids(clustered)
    assert all(not np.allclose(start[name][0], after[name][0]) for name in start)
    assert max(clustering.unique_values(clustering.strip_clustering(clustered)).values()) <= 4
