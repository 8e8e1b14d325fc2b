"""`Plan`: which layers, heads and FFN units to keep; `make_plan` chooses them."""

import dataclasses
import math
import numbers

import numpy as np

from kcompress._errors import check_fraction, check_int, expected_error


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a structurally pruned model keeps of the original.

    Attributes:
        layers: Indices (in the original) of the transformer layers kept, in order.
        heads: For each kept layer, the sorted indices of the heads kept.
        ffn: For each kept layer, the sorted indices of the feed-forward units kept.

    Example:

    >>> plan = Plan(layers=(0, 1), heads=((0, 2), (1,)), ffn=((0, 1, 2), (3,)))
    >>> plan.num_heads, plan.intermediate_dim
    ((2, 1), (3, 1))
    """

    layers: tuple
    heads: tuple
    ffn: tuple

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        object.__setattr__(self, "heads", tuple(tuple(sorted(int(h) for h in kept)) for kept in self.heads))
        object.__setattr__(self, "ffn", tuple(tuple(sorted(int(u) for u in kept)) for kept in self.ffn))
        if not (len(self.layers) == len(self.heads) == len(self.ffn)) or not self.layers:
            raise expected_error("layers, heads and ffn of the same non-zero length", plan=self)
        for name, groups in (("heads", self.heads), ("ffn", self.ffn)):
            if any(not kept for kept in groups):
                raise expected_error(f"at least one kept unit in {name} of every kept layer", **{name: groups})

    @property
    def num_heads(self):
        return tuple(len(kept) for kept in self.heads)

    @property
    def intermediate_dim(self):
        return tuple(len(kept) for kept in self.ffn)

    @classmethod
    def full(cls, architecture):
        """The plan that keeps everything of a model with this `Architecture`."""
        return cls(
            layers=tuple(range(architecture.num_layers)),
            heads=tuple(tuple(range(n)) for n in architecture.num_heads),
            ffn=tuple(tuple(range(n)) for n in architecture.intermediate_dim),
        )


def _from_fraction(name, target, sizes):
    check_fraction(name, target)
    return [n - math.floor(target * n + 0.5) for n in sizes]


def _from_counts(name, target, sizes):
    if len(target) != len(sizes):
        raise expected_error(
            f"{name} as a list with one count to keep per layer ({len(sizes)} layers)", **{name: target}
        )
    counts = [check_int(name, count, minimum=0) for count in target]
    for count, size in zip(counts, sizes):
        if count > size:
            raise expected_error(f"{name} counts of at most the layer sizes {list(sizes)}", **{name: target})
    return counts


def keep_counts(name, target, sizes):
    """Units to keep per layer for a target: a fraction to remove, or counts to keep.

    Args:
        name: ``"heads"`` or ``"ffn"`` (for messages).
        target: A number in [0, 1) (the fraction of each layer's units to
            remove, rounded half up), or a list with one number of units to
            keep per layer.
        sizes: Units per layer in the model.

    Returns:
        A list of counts (may contain 0; `make_plan` refuses those for kept layers).

    Example:

    >>> keep_counts("heads", 0.5, [12, 12, 6])
    [6, 6, 3]
    >>> keep_counts("ffn", [4, 2], [8, 8])
    [4, 2]
    """
    if isinstance(target, (list, tuple)):
        return _from_counts(name, target, sizes)
    if isinstance(target, numbers.Real) and not isinstance(target, bool):
        return _from_fraction(name, float(target), sizes)
    raise expected_error(
        f"{name} to be a fraction in [0, 1) to remove or a list of per-layer counts to keep", **{name: target}
    )


def kept_layers(layers, num_layers):
    """The indices of the layers to keep: `layers` is None, a count k (the first k) or a list.

    Example:

    >>> kept_layers(2, 4), kept_layers([0, 3], 4), kept_layers(None, 3)
    ((0, 1), (0, 3), (0, 1, 2))
    """
    if layers is None:
        return tuple(range(num_layers))
    if isinstance(layers, (list, tuple)):
        indices = [check_int("layers", i, minimum=0) for i in layers]
        if not indices or len(set(indices)) != len(indices) or max(indices) >= num_layers:
            raise expected_error(
                f"layers as a non-empty list of distinct layer indices in [0, {num_layers})", layers=layers
            )
        return tuple(sorted(indices))
    count = check_int("layers", layers, minimum=1)
    if count > num_layers:
        raise expected_error(f"layers to keep between 1 and {num_layers}", layers=layers)
    return tuple(range(count))


def top_units(scores, count):
    """Indices of the `count` highest scores (ties: lower index first), sorted.

    Example:

    >>> top_units([0.1, 0.9, 0.5, 0.9], 2)
    (1, 3)
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return tuple(sorted(int(i) for i in order[:count]))


def check_targets(architecture, heads, ffn, layers):
    """Validates the targets against a model's sizes; returns ``(layers, head counts, ffn counts)``."""
    kept = kept_layers(layers, architecture.num_layers)
    head_counts = keep_counts("heads", heads, architecture.num_heads)
    ffn_counts = keep_counts("ffn", ffn, architecture.intermediate_dim)
    for name, counts in (("heads", head_counts), ("ffn", ffn_counts)):
        for i in kept:
            if counts[i] < 1:
                unit = "head" if name == "heads" else "feed-forward unit"
                raise expected_error(
                    f"at least one {unit} left in every kept layer; to remove layer {i} entirely, drop it with "
                    f"layers= (e.g. layers={[j for j in kept if j != i]})",
                    **{name: heads if name == "heads" else ffn},
                )
    return kept, head_counts, ffn_counts


def make_plan(architecture, importance, heads=0.0, ffn=0.0, layers=None):
    """Chooses what to keep: the most important heads and units of each kept layer.

    Args:
        architecture: The model's `Architecture`.
        importance: An `Importance` (scores per layer), or None when nothing
            but whole layers is removed.
        heads, ffn: Fraction in [0, 1) to remove from each layer, or a list
            of per-layer numbers to keep (one per layer of the model).
        layers: None (keep all), k (keep the first k) or a list of indices.

    Returns:
        A `Plan`.
    """
    kept, head_counts, ffn_counts = check_targets(architecture, heads, ffn, layers)

    def choose(i, counts, sizes, scores_of):
        if counts[i] == sizes[i]:
            return tuple(range(sizes[i]))
        return top_units(scores_of[i], counts[i])

    return Plan(
        layers=kept,
        heads=tuple(
            choose(i, head_counts, architecture.num_heads, importance.heads if importance else None) for i in kept
        ),
        ffn=tuple(
            choose(i, ffn_counts, architecture.intermediate_dim, importance.ffn if importance else None) for i in kept
        ),
    )
