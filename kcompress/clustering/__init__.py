"""Weight clustering (weight sharing) for Keras 3 models: wrap, train centroids, strip.

Trains under the TensorFlow and JAX backends, and under the mixed-precision
policies (the centroids and the stripped kernels stay float32).
"""

from kcompress.clustering.api import cluster_weights, strip_clustering, unique_values
from kcompress.clustering.transformer import cluster_transformer
from kcompress.clustering.wrapper import ClusterWeights, clustering_wrappers

__all__ = [
    "ClusterWeights",
    "cluster_transformer",
    "cluster_weights",
    "clustering_wrappers",
    "strip_clustering",
    "unique_values",
]
