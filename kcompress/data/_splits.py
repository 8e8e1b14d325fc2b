"""The seeded train / validation / test split shared by the offline data sets."""

import functools

import numpy as np

SPLITS = ("train", "validation", "test")
"""The split names the offline loaders accept."""

# Validation and test each get 10% of a data set; train gets the rest.
_HELDOUT_FRACTION = 0.1


def readonly(array):
    """Returns `array`, made read-only (the loaders hand out shared, cached arrays)."""
    array.setflags(write=False)
    return array


def _split_sizes(n):
    heldout = int(n * _HELDOUT_FRACTION)
    return {"train": n - 2 * heldout, "validation": heldout, "test": heldout}


@functools.lru_cache(maxsize=16)
def seeded_splits(n, seed):
    """``{split: read-only indices}``: a permutation of ``range(n)`` seeded by `seed`, cut 80/10/10.

    Example:

    >>> splits = seeded_splits(10, 0)
    >>> [len(splits[name]) for name in SPLITS]
    [8, 1, 1]
    >>> sorted(np.concatenate(list(splits.values())).tolist()) == list(range(10))
    True
    """
    permutation = np.random.default_rng(seed).permutation(n)
    indices = {}
    start = 0
    for name, size in _split_sizes(n).items():
        indices[name] = readonly(permutation[start : start + size].copy())
        start += size
    return indices
