"""`LayerTable`: values keyed by layer class, found along a class's base classes."""


class LayerTable:
    """A table keyed by layer class, looked up along the class hierarchy.

    A layer (or class) takes the entry of the first class in its MRO that
    the table has, so keras-hub's `ReversibleEmbedding` takes the entry of
    `Embedding`. Classes of optional packages can be keyed by name instead:
    ``"package.ClassName"`` matches a class of that name defined in any
    module under ``package``. At each base class the class key is tried
    before the name.

    Args:
        by_class: ``{class: value}``, in the order `names` lists them.
        by_name: Optional ``{"package.ClassName": value}``.

    Example:

    >>> import keras
    >>> table = LayerTable({keras.layers.Dense: "dense", keras.layers.Embedding: "embedding"},
    ...                    by_name={"keras.Dropout": "dropout"})
    >>> table.lookup(keras.layers.Dense(2)), table.lookup(keras.layers.Dropout), table.lookup(keras.layers.ReLU())
    ('dense', 'dropout', None)
    >>> table.names()
    'Dense, Embedding'
    """

    def __init__(self, by_class, by_name=None):
        self._by_class = dict(by_class)
        self._by_name = {}
        for key, value in (by_name or {}).items():
            package, _, name = key.rpartition(".")
            self._by_name[name] = (package, value)

    def lookup(self, layer_or_class):
        """The value for a layer or class (that of its nearest base in the table), or None."""
        cls = layer_or_class if isinstance(layer_or_class, type) else type(layer_or_class)
        for base in cls.__mro__:
            if base in self._by_class:
                return self._by_class[base]
            named = self._by_name.get(base.__name__)
            if named is not None and base.__module__.startswith(named[0]):
                return named[1]
        return None

    def names(self):
        """The names of the classes keyed by class, comma-separated (for error messages)."""
        return ", ".join(cls.__name__ for cls in self._by_class)
