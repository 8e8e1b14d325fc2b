"""`cluster_transformer`: cluster a keras-hub classifier's encoder, fine-tune, strip."""

import keras

from kcompress._errors import expected_error
from kcompress.clustering.api import cluster_weights, strip_clustering


def _head_names(model):
    """Names of the layers of a keras-hub task outside its backbone (the classification head)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, keras.layers.Layer):
        return set()
    inside = {id(layer) for layer in backbone._flatten_layers()}
    return {layer.name for layer in model._flatten_layers(include_self=False) if id(layer) not in inside}


def cluster_transformer(
    model,
    number_of_clusters=16,
    include_embeddings=False,
    include_head=False,
    fine_tune=None,
    **options,
):
    """Returns a plain copy of a keras-hub classifier with clustered encoder kernels.

    Clusters the `Dense` and `EinsumDense` kernels of the backbone (attention
    projections, feed-forward layers, pooler), optionally the token and
    segment embeddings and the classification head, calls `fine_tune` on the
    clustered model (e.g. ``lambda m: (m.compile(...), m.fit(...))``), then
    strips it. This is the "clustered" row of a compression benchmark in one
    call: the result exports with `tflite_export.convert` and its gzipped
    `.tflite` shrinks with the number of clusters.

    Args:
        model: A built keras-hub task such as `BertTextClassifier` (any
            built Keras model works: without a backbone, every Dense and
            EinsumDense counts as encoder).
        number_of_clusters: Centroids per kernel, an integer >= 2.
        include_embeddings: Also cluster `Embedding` tables (keras-hub's
            token and segment embeddings; position embeddings never).
        include_head: Also cluster the kernels outside the backbone.
        fine_tune: Optional callable ``clustered_model -> anything`` that
            trains the centroids (compile and fit) before the strip.
        **options: More `cluster_weights` arguments (``init``,
            ``iterations``, ``layer_configs``, ...).

    Returns:
        A plain Keras model of the same class as `model`.

    Example:

    >>> from kcompress import clustering
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(2)])
    >>> small = clustering.cluster_transformer(model, number_of_clusters=4)
    >>> max(clustering.unique_values(small).values())
    4
    """
    if "layers" in options:
        raise expected_error("no `layers` argument (use include_embeddings / include_head)", layers=options["layers"])
    if fine_tune is not None and not callable(fine_tune):
        raise expected_error("fine_tune to be None or a callable taking the clustered model", fine_tune=fine_tune)
    head = set() if include_head else _head_names(model)
    kinds = (keras.layers.Dense, keras.layers.EinsumDense) + ((keras.layers.Embedding,) if include_embeddings else ())

    def selects(layer):
        return isinstance(layer, kinds) and layer.name not in head

    clustered = cluster_weights(model, number_of_clusters, layers=selects, **options)
    if fine_tune is not None:
        fine_tune(clustered)
    return strip_clustering(clustered)
