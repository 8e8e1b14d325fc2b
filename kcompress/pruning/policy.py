"""`PruningPolicy`: which layers to prune, decided from the whole model for a target runtime.

A `layers=` filter of `prune_low_magnitude` looks at one layer at a time. A
policy looks at the graph: a runtime's fast sparse kernels run only some
layers, and only where the layers around them let it (see
`kcompress.pruning.XNNPackSparse`). A policy also says, with a clear error,
when a model cannot benefit at all.
"""

from kcompress._errors import expected_error


class PruningPolicy:
    """Base class: ``select(model)`` -> the layers of `model` to prune.

    Subclasses are frozen dataclasses (hashable, comparable, their fields
    are their config) registered with ``keras.saving.register_keras_serializable``.
    """

    def select(self, model):
        """Returns the layers of `model` to prune; raises `ValueError` if `model` does not fit the policy."""
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def get(policy):
    """Checks the `policy` argument of `prune_low_magnitude`: None or a `PruningPolicy`.

    Example:

    >>> get(None) is None
    True
    """
    if policy is not None and not isinstance(policy, PruningPolicy):
        raise expected_error("policy to be None or a kcompress.pruning.PruningPolicy", policy=policy)
    return policy
