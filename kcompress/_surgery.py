"""Model surgery: copy a Keras model and swap some of its layers.

Every kcompress transformation (wrap for pruning, strip, ...) is "copy the
model, replacing some layers". `transform_layers` is the one place that does
it, for every kind of Keras 3 model:

- plain `Sequential` and `Functional` models go through
  `keras.models.clone_model`, so the result is an ordinary model whose config
  lists the new layers (it saves and loads as `.keras`);
- any other model (subclassed models, keras-hub tasks and backbones, layers
  nested inside composite layers such as attention) is copied from its config
  and weights, keeping its class, and the layers are swapped in place in the
  copy: attributes, tracked layer lists and functional graph nodes.

The input model is never modified.
"""

import os

import keras
from keras.src.models.functional import Functional

from kcompress import _swaps


def fresh_copy(layer):
    """Returns a new layer or model built from `layer`'s config (new weights).

    Layers swapped in place are left out: the copy has the layers its
    class builds (see `copy_layer`'s ``fallback_weights``).
    """
    try:
        with _swaps.without_swaps(layer):
            config = keras.saving.serialize_keras_object(layer)
        new = keras.saving.deserialize_keras_object(config)
    except Exception as error:
        raise ValueError(
            f"Expected a model whose layers can be copied from their config "
            f"(implement `get_config` on custom layers and register them with "
            f"`keras.saving.register_keras_serializable`). Received: "
            f"{type(layer).__name__} '{layer.name}', which failed with: {error}"
        ) from error
    if isinstance(layer, keras.layers.Layer) and not new.built and layer.built:
        build_config = layer.get_build_config()
        if build_config:
            new.build_from_config(build_config)
    return new


def _copy_assets(source, target):
    """Copies Keras assets (e.g. keras-hub tokenizer vocabularies) across.

    Assets are not part of a config or of the weights; Keras' own saving
    code moves them, so a copy uses the same path: write `source`'s assets to
    a temporary folder and load them into `target`, which has the same
    structure wherever assets live.
    """
    import tempfile

    from keras.src.saving import saving_lib

    with tempfile.TemporaryDirectory() as parent:
        folder = os.path.join(parent, "assets")
        saving_lib._save_state(
            source,
            weights_store=None,
            assets_store=saving_lib.DiskIOStore(folder, mode="w"),
            inner_path="",
            visited_saveables=set(),
        )
        if not any(files for _, _, files in os.walk(folder)):
            return
        saving_lib._load_state(
            target,
            weights_store=None,
            assets_store=saving_lib.DiskIOStore(folder, mode="r"),
            inner_path="",
            visited_saveables=set(),
            failed_saveables=set(),
        )


def copy_layer(layer, fallback_weights=None):
    """Returns a fresh copy of a built layer or model, with its weights.

    Args:
        layer: The layer or model to copy.
        fallback_weights: Optional callable ``layer -> list of values`` used
            when the copy rebuilt from the config has fewer weights than
            `layer` (a layer swapped in place is not in its parent's config).
    """
    new = fresh_copy(layer)
    if not isinstance(layer, keras.layers.Layer):
        return new  # A stateless operation of a functional graph (`x[:, 0]`): no assets or weights.
    _copy_assets(layer, new)
    if len(new.weights) == len(layer.weights):
        new.set_weights(layer.get_weights())
        return new
    values = fallback_weights(layer) if fallback_weights is not None else None
    if values is None or len(values) != len(new.weights):
        raise ValueError(
            f"Expected the copy of '{layer.name}' to have the same weights as "
            f"the original. Received: {len(new.weights)} weights in the copy "
            f"and {len(layer.weights)} in the original; build the model (call "
            f"it on data) before transforming it."
        )
    new.set_weights([keras.ops.convert_to_numpy(v) for v in values])
    return new


def is_plain_graph_model(model):
    """True for `Sequential` and `Functional` models whose config is their graph."""
    if isinstance(model, keras.Sequential):
        return type(model) is keras.Sequential
    return type(model) is Functional or (type(model) is keras.Model and isinstance(model, Functional))


def pair_layers(original, copy):
    """Returns ``id(layer of copy) -> layer of original``, paired by position.

    A copy rebuilt from a config re-runs constructors, so automatically named
    layers (``dense``) can get new names (``dense_2``); the position in the
    layer walk and the class stay the same. Returns an empty dict when the
    two walks differ in length or classes.
    """
    old = original._flatten_layers(include_self=True)
    new = copy._flatten_layers(include_self=True)
    if len(old) != len(new) or any(type(a) is not type(b) for a, b in zip(old, new)):
        return {}
    return {id(b): a for a, b in zip(old, new)}


def transform_layers(model, replace, fallback_weights=None, with_originals=False):
    """Returns a copy of `model` with layers swapped by `replace`.

    Args:
        model: A built Keras model (or layer).
        replace: Callable ``layer -> new_layer | None``, called on copies of
            the model's layers, outermost first. A layer for which it returns
            a new layer is replaced (and not descended into); for None, its
            sublayers are offered in turn.
        fallback_weights: See `copy_layer`.
        with_originals: Call ``replace(layer, original)`` instead, with the
            layer of `model` the copy was made from (see `pair_layers`; the
            copy itself when no original is known), e.g. to select layers
            by the names the caller sees.

    Returns:
        The transformed copy.
    """

    def offer(root, original):
        """`replace` for the layers of `root`, a copy of `original`."""
        if not with_originals:
            return replace
        pairs = pair_layers(original, root)
        return lambda layer: replace(layer, pairs.get(id(layer), layer))

    if is_plain_graph_model(model):

        def clone(layer):
            new = copy_layer(layer, fallback_weights)
            if not isinstance(new, keras.layers.Layer):
                return new
            replace_here = offer(new, layer)
            replaced = replace_here(new)
            if replaced is not None:
                return replaced
            replace_in_place(new, replace_here)
            return new

        cloned = keras.models.clone_model(model, clone_function=clone)
        return cloned
    new = copy_layer(model, fallback_weights)
    replace_in_place(new, offer(new, model))
    return new


def unwrap_all(model, wrappers, final_values):
    """Returns a copy of `model` with each wrapper replaced by its layer.

    Used by `strip_pruning` and `strip_quantization`. In the copy, each
    wrapper's layer gets the values `final_values(wrapper)` gives, as
    ``(variable, value)`` pairs. A copy rebuilt from a config that does not
    list the wrappers (keras-hub and subclassed models, composite layers)
    takes the wrapped layers' weights in their original order, with the
    final values and without the wrappers' own state (masks, ranges).

    Args:
        model: The model holding the wrappers.
        wrappers: The wrappers of `model` (`keras.layers.Wrapper`s), all of
            the class(es) to strip.
        final_values: Callable ``wrapper -> [(variable, value), ...]``.
    """
    wrapper_state = set()
    for w in wrappers:
        inner = {id(v) for v in w.layer.weights}
        wrapper_state.update(id(v) for v in w.weights if id(v) not in inner)
    final = {id(variable): value for w in wrappers for variable, value in final_values(w)}
    kinds = tuple({type(w) for w in wrappers})

    def unwrapped_weights(layer):
        return [final.get(id(v), v) for v in layer.weights if id(v) not in wrapper_state]

    def unwrap(layer):
        if not isinstance(layer, kinds):
            return None
        inner = unwrap_layer(layer, final_values(layer))
        replace_in_place(inner, unwrap)  # A wrapped block can hold wrappers of its own.
        return inner

    return transform_layers(model, unwrap, fallback_weights=unwrapped_weights)


def unwrap_layer(wrapper, values):
    """Assigns ``(variable, value)`` pairs and returns the wrapper's layer."""
    for variable, value in values:
        variable.assign(value)
    return wrapper.layer


def replace_in_place(root, replace):
    """Swaps, inside `root`, each sublayer for which `replace` returns a layer."""
    swaps = {}
    parents = []

    def visit(layer):
        parents.append(layer)
        for child in list(layer._layers):
            if id(child) in swaps:
                continue
            new = replace(child)
            if new is not None and new is not child:
                swaps[id(child)] = (child, new)
            else:
                visit(child)

    visit(root)
    for old, new in swaps.values():
        if isinstance(new, keras.layers.Wrapper):
            _swaps.mark_swapped_in(new)  # Not in `root`'s config: saved by `_swaps`.
        new._inbound_nodes = old._inbound_nodes
        new._outbound_nodes = old._outbound_nodes
        for node in old._inbound_nodes:
            node.operation = new
    for parent in parents:
        _rebind(parent, swaps)
    return _swaps.record_swaps(root)


def _allow_export(tracked_list):
    """Lets TF save a tracked list after an item was swapped in place.

    TF's `ListWrapper` refuses to save a list once an element was replaced,
    because restoring by position could mix up objects. A swap keeps every
    position meaningful (the new layer takes the old one's place), so the
    refusal does not apply; without this a keras-hub model with swapped
    layers cannot be exported to a SavedModel (and so to TFLite).
    """
    if hasattr(tracked_list, "_non_append_mutation_value"):
        tracked_list._non_append_mutation_value = False
        tracked_list._external_modification_value = False
        if hasattr(tracked_list, "_update_snapshot"):
            tracked_list._update_snapshot()


def _swap(value, swaps):
    return swaps[id(value)][1] if id(value) in swaps else value


def _rebind(parent, swaps):
    """Points every reference `parent` holds to a swapped layer at its new one."""
    tracker = getattr(parent, "_tracker", None)
    if tracker is not None:
        for old, new in swaps.values():
            if tracker.is_in_store("layers", old):
                tracker.replace_tracked_value("layers", old, new)
    for name, value in list(vars(parent).items()):
        if name in ("_tracker", "_inbound_nodes", "_outbound_nodes"):
            continue
        if isinstance(value, keras.layers.Layer) and id(value) in swaps:
            locked = tracker is not None and tracker.locked
            if locked:
                tracker.unlock()
            setattr(parent, name, swaps[id(value)][1])
            if locked:
                tracker.lock()
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if id(item) in swaps:
                    value[i] = swaps[id(item)][1]
                    _allow_export(value)
        elif isinstance(value, tuple) and any(id(v) in swaps for v in value):
            object.__setattr__(parent, name, type(value)(_swap(v, swaps) for v in value))
        elif isinstance(value, dict):
            for key, item in list(value.items()):
                if id(item) in swaps:
                    value[key] = swaps[id(item)][1]
                elif isinstance(item, list) and any(id(v) in swaps for v in item):
                    # A functional model's `_operations_by_depth`: depth -> layers.
                    item[:] = [_swap(v, swaps) for v in item]
                    _allow_export(item)
    if isinstance(parent, Functional):
        # Functional.get_config keys its nodes by id(operation).
        for old, new in swaps.values():
            for index in range(len(new._inbound_nodes)):
                key = f"{id(old)}_ib-{index}"
                if key in parent._nodes:
                    parent._nodes.remove(key)
                    parent._nodes.add(f"{id(new)}_ib-{index}")


def find_layers(model, predicate):
    """All layers under `model` (nested too) for which `predicate` holds."""
    return [layer for layer in model._flatten_layers(include_self=False) if predicate(layer)]
