"""`.keras` files of models whose layers were swapped in place.

A keras-hub task (or any subclassed model) saves only its constructor
arguments: loading it runs the constructor, which builds the original
layers, so wrappers `_surgery.replace_in_place` put inside it (pruning,
quantization, clustering) would be missing and their variables would not
load. `record_swaps` makes such a model save, in addition to its own
config, where each wrapper sits (its path down the tracked ``_layers``
lists, by position and name) and the wrapper's config. `LayersSwappedInPlace`, the
registered name those configs are saved under, rebuilds the model from its
own config and swaps the wrappers back in, so Keras then loads every
variable into place.

The model keeps its class for everything but saving: the swapped model's
class is a subclass of its own (same name and module) whose only change is
`get_config`.
"""

import contextlib

import keras
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
    >>> from kcompress import _surgery
    >>> @keras.saving.register_keras_serializable(package="example")
    ... class Tower(keras.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.dense = keras.layers.Dense(2, name="head")
    ...     def call(self, x):
    ...         return self.dense(x)
    >>> model = Tower()
    >>> _ = model(keras.ops.ones((1, 3)))
    >>> wrapped = _surgery.transform_layers(
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
        from kcompress import _surgery

        root = keras.saving.deserialize_keras_object(config["model"])
        replacements = {}
        for entry in config["swapped"]:
            target = _at_path(root, entry["path"])
            replacements[id(target)] = keras.saving.deserialize_keras_object(entry["layer"])
        _surgery.replace_in_place(root, lambda layer: replacements.get(id(layer)))
        return root
