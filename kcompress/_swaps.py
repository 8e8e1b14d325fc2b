"""Layers swapped in place, and the `.keras` files of models that hold them.

`replace_in_place` swaps sublayers inside a model: attributes, tracked
layer lists and functional graph nodes (`_surgery.transform_layers` does it
on a copy). A keras-hub task (or any subclassed model) saves only its
constructor arguments: loading it runs the constructor, which builds the
original layers, so the wrappers swapped in (pruning, quantization,
clustering) would be missing and their variables would not load.
`record_swaps` makes such a model save, in addition to its own config,
where each wrapper sits (its path down the tracked ``_layers`` lists, by
position and name) and the wrapper's config. `LayersSwappedInPlace`, the
registered name those configs are saved under, rebuilds the model from its
own config and swaps the wrappers back in with `replace_in_place`, so Keras
then loads every variable into place.

The model keeps its class for everything but saving: the swapped model's
class is a subclass of its own (same name and module) whose only change is
`get_config`.
"""

import contextlib

import keras
from keras.src.models.functional import Functional
from keras.src.saving import object_registration

_SWAPPED_IN = "_kcompress_swapped_in"
_REGISTERED_NAME = "kcompress>LayersSwappedInPlace"
_subclasses = {}


def mark_swapped_in(layer):
    """Records that `layer` is not what its parent's config builds (a wrapper)."""
    object.__setattr__(layer, _SWAPPED_IN, True)


def swapped_layers(root):
    """``[(path, layer)]`` of the marked layers under `root`.

    A path lists ``[index, name]`` of each layer on the way down the tracked
    ``_layers`` lists. Loading follows the names (layers attached after
    construction, such as a keras-hub preprocessor, can move the indices) and
    falls back to the indices (auto-named layers get new names).
    """
    found, seen = [], set()

    def visit(layer, path):
        for index, child in enumerate(layer._layers):
            if id(child) in seen:
                continue
            seen.add(id(child))
            if getattr(child, _SWAPPED_IN, False):
                # The name of the layer the wrapper replaced, which loading finds in its place.
                found.append(([*path, [index, child.layer.name]], child))
            else:
                visit(child, [*path, [index, child.name]])

    visit(root, [])
    return found


def record_swaps(root):
    """Makes `root` save its swapped-in layers (or, once none are left, save as before)."""
    base = _base_class(type(root))
    cls = _subclass(base) if swapped_layers(root) else base
    if type(root) is not cls:
        object.__setattr__(root, "__class__", cls)
    return root


@contextlib.contextmanager
def without_swaps(root):
    """Within the context, `root` serializes as its own class does (its swapped-in layers left out)."""
    cls = type(root)
    object.__setattr__(root, "__class__", _base_class(cls))
    try:
        yield root
    finally:
        object.__setattr__(root, "__class__", cls)


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
            mark_swapped_in(new)  # Not in `root`'s config: saved by `record_swaps`.
        new._inbound_nodes = old._inbound_nodes
        new._outbound_nodes = old._outbound_nodes
        for node in old._inbound_nodes:
            node.operation = new
    for parent in parents:
        _rebind(parent, swaps)
    return record_swaps(root)


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


def _base_class(cls):
    return getattr(cls, "_kcompress_base", cls)


def _subclass(base):
    """``base`` with a `get_config` that lists the swapped-in layers (one per class, cached)."""
    if base not in _subclasses:
        sub = type(base.__name__, (base,), {"get_config": _get_config, "_kcompress_base": base})
        sub.__module__ = base.__module__
        sub.__qualname__ = base.__qualname__
        # Saved under the loader's name: `LayersSwappedInPlace.from_config` rebuilds it.
        object_registration.GLOBAL_CUSTOM_NAMES[sub] = _REGISTERED_NAME
        _subclasses[base] = sub
    return _subclasses[base]


def _get_config(self):
    base = type(self)._kcompress_base
    own = {
        "module": base.__module__,
        "class_name": base.__name__,
        "registered_name": object_registration.get_registered_name(base),
        "config": base.get_config(self),
    }
    build_config = self.get_build_config()
    if build_config is not None:
        own["build_config"] = build_config
    swapped = [
        {"path": path, "layer": keras.saving.serialize_keras_object(layer)} for path, layer in swapped_layers(self)
    ]
    return {"model": own, "swapped": swapped}


def _at_path(root, path):
    layer = root
    for index, name in path:
        children = list(layer._layers)
        named = [child for child in children if child.name == name]
        if len(named) == 1:
            layer = named[0]
        elif 0 <= index < len(children):
            layer = children[index]
        else:
            raise ValueError(
                f"Expected the swapped-in layer at {path} to have a place in '{root.name}' as its config "
                f"builds it. Received: no layer '{name}' (or number {index}) under '{layer.name}'"
            )
    return layer


@keras.saving.register_keras_serializable(package="kcompress", name="LayersSwappedInPlace")
class LayersSwappedInPlace:
    """Loads a model saved with layers swapped in place (see the module docstring).

    Example:

    >>> import keras
    >>> @keras.saving.register_keras_serializable(package="example")
    ... class Tower(keras.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.dense = keras.layers.Dense(2, name="head")
    ...     def call(self, x):
    ...         return self.dense(x)
    >>> model = Tower()
    >>> _ = model(keras.ops.ones((1, 3)))
    >>> wrapped = replace_in_place(
    ...     model, lambda layer: keras.layers.TimeDistributed(layer) if isinstance(layer, keras.layers.Dense) else None)
    >>> config = keras.saving.serialize_keras_object(wrapped)
    >>> config["registered_name"], [entry["path"] for entry in config["config"]["swapped"]]
    ('kcompress>LayersSwappedInPlace', [[[0, 'head']]])
    >>> type(keras.saving.deserialize_keras_object(config).dense).__name__
    'TimeDistributed'
    """

    def get_config(self):  # Keras registers only classes with one; this class is never instantiated.
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        root = keras.saving.deserialize_keras_object(config["model"])
        replacements = {}
        for entry in config["swapped"]:
            target = _at_path(root, entry["path"])
            replacements[id(target)] = keras.saving.deserialize_keras_object(entry["layer"])
        replace_in_place(root, lambda layer: replacements.get(id(layer)))
        return root
