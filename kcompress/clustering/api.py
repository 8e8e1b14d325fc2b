"""Entry points: `cluster_weights`, `strip_clustering`, `unique_values`."""

import fnmatch

import keras
import numpy as np

from kcompress import _surgery
from kcompress._errors import check_int, expected_error
from kcompress.clustering import clusterable, kmeans
from kcompress.clustering.wrapper import GRADIENT_AGGREGATIONS, ClusterWeights, clustering_wrappers

# Settings a `layer_configs` entry may override.
_OVERRIDABLE = ("number_of_clusters", "init", "iterations", "gradient_aggregation", "seed")


def _names_in(model, pattern):
    return _surgery.find_layers(model, lambda layer: fnmatch.fnmatchcase(layer.name, pattern))


def _layer_filter(model, layers):
    """Turns `layers` into a predicate ``layer -> bool``; checks every name matches."""
    if layers is None:
        return lambda layer: True
    if callable(layers) and not isinstance(layers, type):
        return layers
    items = list(layers) if isinstance(layers, (list, tuple, set)) else [layers]
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, keras.layers.Layer) or clusterable.lookup(item) is None:
                raise expected_error(
                    f"layer classes kcompress can cluster ({clusterable.supported_names()})", layers=item
                )
        elif isinstance(item, str):
            named = _names_in(model, item)
            if not named:
                raise expected_error(f"layer names or glob patterns that match layers of '{model.name}'", layers=item)
            if not any(clusterable.lookup(layer) for layer in named):
                kinds = sorted({type(layer).__name__ for layer in named})
                raise expected_error(
                    f"layers kcompress can cluster ({clusterable.supported_names()})",
                    layers=f"{item!r} matching {', '.join(kinds)}",
                )
        else:
            raise expected_error(
                "layers to be None, a callable, or a list of layer classes and names (glob patterns allowed)",
                layers=layers,
            )
    return lambda layer: any(
        isinstance(layer, item) if isinstance(item, type) else fnmatch.fnmatchcase(layer.name, item) for item in items
    )


def _per_layer(model, settings, layer_configs):
    """Returns ``layer -> settings dict | None`` from the glob overrides."""
    if layer_configs is None:
        return lambda layer: settings
    if not isinstance(layer_configs, dict):
        raise expected_error(
            "layer_configs to be a dict of layer name pattern -> dict or None", layer_configs=layer_configs
        )
    resolved = {}
    for pattern, override in layer_configs.items():
        if not isinstance(pattern, str):
            raise expected_error("layer name patterns (str) as layer_configs keys", layer_configs=layer_configs)
        if not _names_in(model, pattern):
            raise expected_error(f"layer_configs patterns that match layers of '{model.name}'", pattern=pattern)
        if override is not None:
            if not isinstance(override, dict) or set(override) - set(_OVERRIDABLE):
                raise expected_error(
                    f"layer_configs values None or dicts with keys among {_OVERRIDABLE}", **{pattern: override}
                )
            override = _checked({**settings, **override})
        resolved[pattern] = override

    def choose(layer):
        for pattern, override in resolved.items():
            if fnmatch.fnmatchcase(layer.name, pattern):
                return override
        return settings

    return choose


def _checked(settings):
    """Validates the clustering settings (the wrapper checks them again, per layer)."""
    settings = dict(settings)
    settings["number_of_clusters"] = check_int("number_of_clusters", settings["number_of_clusters"], minimum=2)
    kmeans.check_init(settings["init"])
    settings["iterations"] = check_int("iterations", settings["iterations"], minimum=0)
    if settings["gradient_aggregation"] not in GRADIENT_AGGREGATIONS:
        raise expected_error(
            f"gradient_aggregation in {tuple(GRADIENT_AGGREGATIONS)}",
            gradient_aggregation=settings["gradient_aggregation"],
        )
    settings["seed"] = check_int("seed", settings["seed"], minimum=0)
    return settings


def cluster_weights(
    model,
    number_of_clusters=16,
    init="kmeans++",
    layers=None,
    layer_configs=None,
    iterations=10,
    gradient_aggregation="sum",
    preserve_sparsity=True,
    seed=0,
):
    """Returns a copy of `model` whose kernels train as shared centroids.

    Each selected layer is wrapped in `ClusterWeights`: its kernel becomes
    ``take(centroids, assignments)``, with `number_of_clusters` trainable
    centroids found by 1-D k-means and fixed int32 assignments. Train the
    result with `fit` (no callback needed), then `strip_clustering` gives a
    plain model whose kernels have at most `number_of_clusters` distinct
    values, which gzip (and a float `.tflite`) compresses well. Works on
    Sequential, functional, subclassed and keras-hub models (the attention
    projections nested in transformer layers included); the input model is
    unchanged.

    Args:
        model: A built `keras.Model`.
        number_of_clusters: Centroids per weight, an integer >= 2.
        init: ``"kmeans++"``, ``"linear"`` or ``"density"``.
        layers: Which layers to cluster. None: every supported layer (Dense,
            EinsumDense, Conv*, DepthwiseConv2D, SeparableConv2D, Embedding).
            Otherwise a layer class, a name (glob patterns such as
            ``"*feedforward*"``) or a list of them, or a callable
            ``layer -> bool``. Every name must match a layer.
        layer_configs: Optional dict of layer-name glob pattern -> dict of
            overrides (keys among ``number_of_clusters``, ``init``,
            ``iterations``, ``gradient_aggregation``, ``seed``), or None to
            leave matching layers unclustered. The first matching pattern wins.
        iterations: Lloyd iterations after the centroid initialization.
        gradient_aggregation: ``"sum"`` or ``"mean"`` of the members'
            gradients for each centroid.
        preserve_sparsity: Keep the exact zeros of a pruned kernel at zero
            (one centroid pinned at 0 for kernels that have zeros).
        seed: Seed of the k-means++ draws.

    Returns:
        The model to train.

    Example:

    >>> from kcompress import clustering
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
    ...                           keras.layers.Dense(2)])
    >>> clustered = clustering.cluster_weights(model, number_of_clusters=4)
    >>> clustered.compile("adam", "mse")
    >>> _ = clustered.fit(np.random.rand(32, 8), np.random.rand(32, 2), verbose=0)
    >>> list(clustering.unique_values(clustering.strip_clustering(clustered)).values())
    [4, 4]
    """
    settings = _checked(
        {
            "number_of_clusters": number_of_clusters,
            "init": init,
            "iterations": iterations,
            "gradient_aggregation": gradient_aggregation,
            "seed": seed,
        }
    )
    if not isinstance(preserve_sparsity, bool):
        raise expected_error("preserve_sparsity to be a bool", preserve_sparsity=preserve_sparsity)
    if not isinstance(model, keras.Model):
        raise expected_error("a keras.Model", model=model)
    if not model.built:
        raise expected_error("a built model (call it on data or give it an Input)", model=model.name)
    if clustering_wrappers(model):
        raise expected_error("a model not already clustered (strip_clustering it first)", model=model.name)
    selects = _layer_filter(model, layers)
    choose = _per_layer(model, settings, layer_configs)

    def wrap(layer):
        if clusterable.lookup(layer) is None or not layer.built or not selects(layer):
            return None
        chosen = choose(layer)
        if chosen is None:
            return None
        wrapper = ClusterWeights(layer, **chosen, keep_zeros=None if preserve_sparsity else [])
        wrapper.build(None)
        return wrapper

    clustered = _surgery.transform_layers(model, wrap)
    if not clustering_wrappers(clustered):
        raise expected_error(
            f"layers to match at least one layer of model '{model.name}' kcompress can cluster "
            f"({clusterable.supported_names()})",
            layers=layers,
        )
    return clustered


def _final_values(wrapper):
    return list(zip(wrapper.clustered_variables, wrapper.clustered_values()))


def strip_clustering(model):
    """Returns a plain Keras copy of `model` with the clustered kernels written in.

    Every `ClusterWeights` wrapper is replaced by its layer, whose clustered
    weights hold ``take(centroids, assignments)``: at most
    `number_of_clusters` distinct values each, and trainable again. The
    result needs nothing from kcompress to load or run.

    Args:
        model: A model returned by `cluster_weights` (after `fit`), or a
            `ClusterWeights` layer.

    Returns:
        A new model (or layer) without clustering wrappers.

    Example:

    >>> from kcompress import clustering
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> stripped = clustering.strip_clustering(clustering.cluster_weights(model, 3))
    >>> type(stripped.layers[-1]).__name__, list(clustering.unique_values(stripped).values())
    ('Dense', [3])
    """
    if isinstance(model, ClusterWeights):
        return _release(_surgery.unwrap_layer(model, _final_values(model)), model)
    if not isinstance(model, keras.Model):
        raise expected_error("a keras.Model", model=model)
    wrappers = clustering_wrappers(model)
    if not wrappers:
        return _surgery.copy_layer(model)
    originals = {id(wrapper) for wrapper in wrappers}

    def final_values(wrapper):
        # Called on the model's wrappers (read only) and on their copies (unwrapped in the result).
        if id(wrapper) not in originals:
            _release(wrapper.layer, wrapper)
        return _final_values(wrapper)

    return _surgery.unwrap_all(model, wrappers, final_values)


def _release(layer, wrapper):
    """Makes the weights `wrapper` froze trainable again; returns `layer`."""
    for variable in wrapper.clustered_variables:
        variable.trainable = True
    return layer


def unique_values(model):
    """Number of distinct values in each clusterable weight of `model`.

    For a stripped model, the count the `.tflite` and gzip see; for a model
    under clustering, that of the values the layers run with.

    Returns:
        Dict of weight path -> number of distinct values.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")], name="mlp")
    >>> unique_values(model)
    {'mlp/head/kernel': 8}
    """
    layers = list(model._flatten_layers(include_self=False)) if isinstance(model, keras.Model) else [model]
    wrapped = {id(layer.layer) for layer in layers if isinstance(layer, ClusterWeights)}
    counts = {}
    for layer in layers:
        if isinstance(layer, ClusterWeights):
            pairs = _final_values(layer)
        elif id(layer) in wrapped or clusterable.lookup(layer) is None:
            continue
        else:
            own = {v.name: v for v in layer._trainable_variables + layer._non_trainable_variables}
            pairs = [(own[name], own[name]) for name in clusterable.lookup(layer) if name in own]
        for variable, value in pairs:
            counts[variable.path] = len(np.unique(keras.ops.convert_to_numpy(value)))
    return counts
