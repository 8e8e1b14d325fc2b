"""Entry points: `prune_low_magnitude`, `strip_pruning`, `sparsity_report`."""

import fnmatch

import keras

from kcompress import _surgery
from kcompress._errors import expected_error
from kcompress.pruning import masks, prunable, schedules
from kcompress.pruning import policy as policies
from kcompress.pruning.wrapper import PruneLowMagnitude, pruning_wrappers


def _layer_filter(layers):
    """Turns the `layers` argument into ``(predicate, explicit_check)``."""
    if layers is None:
        return (lambda layer: prunable.lookup(layer).default), None
    if callable(layers) and not isinstance(layers, type):
        return layers, None
    items = list(layers) if isinstance(layers, (list, tuple, set)) else [layers]
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, keras.layers.Layer):
                raise expected_error("layer classes or names", layers=layers)
            if prunable.lookup(item) is None:
                raise expected_error(
                    f"layer classes kcompress can prune "
                    f"({prunable.supported_names()})",
                    layers=item.__name__,
                )
        elif not isinstance(item, str):
            raise expected_error(
                "layers to be None, a callable, or a list of layer classes "
                "and names (glob patterns allowed)",
                layers=layers,
            )

    def matches(layer):
        return any(
            isinstance(layer, item)
            if isinstance(item, type)
            else fnmatch.fnmatchcase(layer.name, item)
            for item in items
        )

    def explicit_check(model):
        for item in items:
            if isinstance(item, str):
                named = _surgery.find_layers(
                    model, lambda layer, item=item: fnmatch.fnmatchcase(layer.name, item)
                )
                if named and not any(prunable.lookup(layer) for layer in named):
                    kinds = sorted({type(layer).__name__ for layer in named})
                    raise expected_error(
                        f"layers kcompress can prune ({prunable.supported_names()})",
                        layers=f"{item!r} matching {', '.join(kinds)}",
                    )

    return matches, explicit_check


def prune_low_magnitude(
    to_prune,
    sparsity_schedule=None,
    pattern=None,
    layers=None,
    policy=None,
):
    """Returns a copy of a model (or a layer) set up for magnitude pruning.

    Works on Sequential, functional and subclassed Keras 3 models and on
    keras-hub models, whose attention projections (`EinsumDense`) and
    feed-forward `Dense` layers sit nested inside transformer layers. Each
    selected layer is wrapped in `PruneLowMagnitude`; train the result with
    `fit` and the `UpdatePruningStep` callback, then call `strip_pruning`.
    The input model is left unchanged.

    Args:
        to_prune: A built `keras.Model`, or a single layer (returned wrapped,
            for building pruned models by hand).
        sparsity_schedule: A `PruningSchedule` or a callable
            ``step -> sparsity``. Default: ``ConstantSparsity(0.5)``.
        pattern: None (unstructured), `NM(n, m)` or `Block(shape)`.
        layers: Which layers to prune. None prunes the kernels of every
            supported layer (Dense, EinsumDense, Conv*, SeparableConv2D,
            DepthwiseConv2D) but not embeddings. Otherwise a layer class, a
            name (glob patterns such as ``"*intermediate*"`` work) or a list of
            them, or a callable ``layer -> bool``. Naming `Embedding` (or an
            embedding layer) prunes embeddings too.
        policy: None, or a `PruningPolicy` that picks the layers from the
            whole graph for a runtime, e.g. `XNNPackSparse()` (the 1x1
            convolutions LiteRT's CPU runs with sparse kernels). It raises
            if the model does not fit it; with `layers` too, a layer is
            pruned only if both select it.

    Returns:
        A new model (or a `PruneLowMagnitude` layer).

    Example:

    >>> import numpy as np
    >>> from kcompress import pruning
    >>> model = keras.Sequential([
    ...     keras.Input((16,)),
    ...     keras.layers.Dense(32, activation="relu"),
    ...     keras.layers.Dense(2),
    ... ])
    >>> schedule = pruning.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=4,
    ...                                    frequency=1)
    >>> pruned = pruning.prune_low_magnitude(model, sparsity_schedule=schedule)
    >>> pruned.compile("adam", "mse")
    >>> _ = pruned.fit(np.ones((32, 16)), np.ones((32, 2)), batch_size=4,
    ...                verbose=0, callbacks=[pruning.UpdatePruningStep()])
    >>> small = pruning.strip_pruning(pruned)
    >>> print(f"{pruning.sparsity_report(small).total_sparsity:.2f}")
    0.75
    """
    schedule = schedules.get(
        sparsity_schedule
        if sparsity_schedule is not None
        else schedules.ConstantSparsity(0.5)
    )
    pattern = masks.get(pattern)
    policy = policies.get(policy)
    if not isinstance(to_prune, keras.Model):
        if isinstance(to_prune, keras.layers.Layer) and policy is None:
            return PruneLowMagnitude(to_prune, schedule, pattern)
        raise expected_error(
            "a keras.Model or keras.layers.Layer (a keras.Model with policy)", to_prune=to_prune
        )
    if not to_prune.built:
        raise expected_error(
            "a built model (call it on data or give it an Input)",
            to_prune=to_prune.name,
        )
    if pruning_wrappers(to_prune):
        raise expected_error(
            "a model not already under pruning (strip_pruning it first)",
            to_prune=to_prune.name,
        )
    selects, explicit_check = _layer_filter(layers)
    if explicit_check is not None:
        explicit_check(to_prune)
    chosen = None if policy is None else {id(layer) for layer in policy.select(to_prune)}

    def wrap(layer, original):
        if prunable.lookup(layer) is None or not selects(layer):
            return None
        if chosen is not None and id(original) not in chosen:
            return None
        wrapper = PruneLowMagnitude(layer, schedule, pattern)
        wrapper.build(None)
        return wrapper

    pruned = _surgery.transform_layers(to_prune, wrap, with_originals=True)
    if not pruning_wrappers(pruned):
        raise expected_error(
            f"layers to match at least one prunable layer of model "
            f"'{to_prune.name}' ({prunable.supported_names()})",
            layers=layers,
        )
    return pruned


def strip_pruning(model):
    """Returns a plain Keras copy of `model` with the masks applied for good.

    Every `PruneLowMagnitude` wrapper is replaced by its layer, whose pruned
    weights hold ``weight * mask``: exactly the sparsity the schedule reached.
    The result needs nothing from kcompress to load or run.

    Args:
        model: A model returned by `prune_low_magnitude` (after `fit`), or a
            `PruneLowMagnitude` layer.

    Returns:
        A new model (or layer) without pruning wrappers.

    Example:

    >>> from kcompress import pruning
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> stripped = pruning.strip_pruning(pruning.prune_low_magnitude(model))
    >>> type(stripped.layers[-1]).__name__
    'Dense'
    """
    if isinstance(model, PruneLowMagnitude):
        return _surgery.unwrap_layer(model, list(zip(model.pruned_variables, model.masked_values())))
    if not isinstance(model, keras.Model):
        raise expected_error("a keras.Model", model=model)
    wrappers = pruning_wrappers(model)
    if not wrappers:
        return _surgery.copy_layer(model)
    return _surgery.unwrap_all(model, wrappers, lambda wrapper: list(zip(wrapper.pruned_variables,
                                                                          wrapper.masked_values())))
