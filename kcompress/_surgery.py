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

from kcompress._swaps import replace_in_place, without_swaps


def fresh_copy(layer):
    """Returns a new layer or model built from `layer`'s config (new weights).

    Layers swapped in place are left out: the copy has the layers its
    class builds (see `copy_layer`'s ``fallback_weights``).
    """
    try:
        with without_swaps(layer):
            config = keras.saving.serialize_keras_object(layer)
        if _compiles_only_itself(layer):
            config.pop("compile_config", None)  # Keras would warn that it can't, and compile nothing.
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


def _compiles_only_itself(model):
    """Whether `model` has its own `compile` (a keras-hub task) that Keras can't call from a config."""
    cls = type(model)
    return (
        isinstance(model, keras.Model)
        and cls.compile is not keras.Model.compile
        and cls.compile_from_config is keras.Model.compile_from_config
    )


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


def transform_layers(model, replace, fallback_weights=None, with_originals=False, operations=False):
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
                if not operations:
                    return new
                replaced = replace(new, layer) if with_originals else replace(new)
                return new if replaced is None else replaced
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


def unwrap_all(model, wrappers, final_values, unwrapped=None):
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
        unwrapped: Optional callable ``wrapper -> layer | None``: a layer to
            put in the wrapper's place instead of its own (None: its own).
    """
    wrapper_state = set()
    for w in wrappers:
        inner = {id(v) for v in (w.layer.weights if hasattr(w, "layer") else [])}
        wrapper_state.update(id(v) for v in w.weights if id(v) not in inner)
    final = {id(variable): value for w in wrappers for variable, value in final_values(w)}
    kinds = tuple({type(w) for w in wrappers})

    def unwrapped_weights(layer):
        return [final.get(id(v), v) for v in layer.weights if id(v) not in wrapper_state]

    def unwrap(layer):
        if not isinstance(layer, kinds):
            return None
        inner = unwrapped(layer) if unwrapped is not None else None
        if inner is None:
            inner = unwrap_layer(layer, final_values(layer))
        if isinstance(inner, keras.layers.Layer):
            replace_in_place(inner, unwrap)  # A wrapped block can hold wrappers of its own.
        return inner

    return transform_layers(model, unwrap, fallback_weights=unwrapped_weights)


def unwrap_layer(wrapper, values):
    """Assigns ``(variable, value)`` pairs and returns the wrapper's layer."""
    for variable, value in values:
        variable.assign(value)
    return wrapper.layer


def find_layers(model, predicate):
    """All layers under `model` (nested too) for which `predicate` holds."""
    return [layer for layer in model._flatten_layers(include_self=False) if predicate(layer)]
