"""Sparsity patterns: which weights a mask keeps, as pure tensor functions.

A pattern turns a weight tensor and a target sparsity into a 0/1 mask of the
same shape. Patterns hold no Keras state, so each is tested on plain arrays.

- `Unstructured`: the smallest-magnitude weights anywhere in the tensor.
- `NM(n, m)`: in every group of `m` consecutive weights along the input axis,
  keep the `n` largest (2:4 is what sparse tensor cores run).
- `Block(shape)`: whole blocks of the 2-D view of the kernel, ranked by their
  mean magnitude (friendly to block-sparse kernels).

Ties are broken by position, so the number of zeros is always exactly the one
asked for: ``round(size * sparsity)`` for `Unstructured`.
"""

import math

import keras
from keras import ops

from kcompress._errors import check_int, expected_error


def _scores(weights, previous_mask):
    """Magnitudes; weights already pruned score -1 so they stay pruned."""
    scores = ops.abs(weights)
    if previous_mask is None:
        return scores
    return ops.where(previous_mask > 0, scores, -ops.ones_like(scores))


def _keep_top(scores, sparsity):
    """Mask over the flat `scores` pruning exactly round(size * sparsity).

    One sort finds the threshold; ties at the threshold are pruned in
    position order, so the count is exact even when many scores are equal.
    """
    size = ops.shape(scores)[0]
    num_pruned = ops.cast(ops.round(ops.cast(size, "float32") * sparsity), "int32")
    ordered = ops.sort(scores)
    threshold = ops.take(ordered, ops.maximum(num_pruned - 1, 0))
    below = scores < threshold
    tied = ops.equal(scores, threshold)
    quota = num_pruned - ops.sum(ops.cast(below, "int32"))
    tied_rank = ops.cumsum(ops.cast(tied, "int32"))
    pruned = ops.logical_or(below, ops.logical_and(tied, tied_rank <= quota))
    pruned = ops.logical_and(pruned, num_pruned > 0)
    return 1.0 - ops.cast(pruned, "float32")


class SparsityPattern:
    """Base class: ``compute_mask(weights, sparsity, ...)`` -> 0/1 mask.

    `previous_mask`, when given, makes masks only grow: weights it prunes
    rank below every other weight, so they stay pruned while the sparsity
    does not go down.
    """

    def validate(self, shape, input_axis, name):
        """Raises a clear error if `shape` cannot take this pattern."""

    def compute_mask(self, weights, sparsity, input_axis=0, previous_mask=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


@keras.saving.register_keras_serializable(package="kcompress")
class Unstructured(SparsityPattern):
    """Prunes the smallest-magnitude weights anywhere in the tensor.

    Example:

    >>> import numpy as np
    >>> w = np.array([[0.1, -2.0], [0.3, 4.0]], "float32")
    >>> np.asarray(Unstructured().compute_mask(w, 0.5)).tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """

    def compute_mask(self, weights, sparsity, input_axis=0, previous_mask=None):
        del input_axis
        scores = ops.reshape(_scores(weights, previous_mask), (-1,))
        return ops.reshape(_keep_top(scores, sparsity), ops.shape(weights))

    def __repr__(self):
        return "Unstructured()"


@keras.saving.register_keras_serializable(package="kcompress")
class NM(SparsityPattern):
    """N:M structured sparsity: `n` non-zeros in every `m` consecutive weights.

    Groups run along the kernel's input (reduction) axis, the layout that
    sparse tensor cores and XNNPACK's sparse kernels expect. The sparsity is
    fixed at ``1 - n / m``; the schedule only decides when masks are applied.

    Args:
        n: Weights kept per group, ``1 <= n < m``.
        m: Group size.

    Example:

    >>> import numpy as np
    >>> w = np.array([[1.0], [-4.0], [3.0], [0.5]], "float32")
    >>> np.asarray(NM(2, 4).compute_mask(w, sparsity=0.5)).ravel().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """

    def __init__(self, n, m):
        m = check_int("m", m, minimum=2)
        n = check_int("n", n, minimum=1)
        if n >= m:
            raise expected_error(f"n < m={m} for N:M sparsity", n=n)
        self.n = n
        self.m = m

    @property
    def sparsity(self):
        return 1.0 - self.n / self.m

    def validate(self, shape, input_axis, name):
        if shape[input_axis] % self.m:
            raise expected_error(
                f"the input dimension (axis {input_axis}) of weight '{name}' "
                f"to be divisible by m={self.m} for {self.n}:{self.m} sparsity",
                shape=tuple(shape),
            )

    def compute_mask(self, weights, sparsity=None, input_axis=0, previous_mask=None):
        del sparsity
        moved = ops.moveaxis(_scores(weights, previous_mask), input_axis, -1)
        moved_shape = ops.shape(moved)
        groups = ops.reshape(moved, (-1, self.m))
        # Per group, rank each weight; keep the n of highest rank.
        ranks = ops.argsort(ops.argsort(groups, axis=-1), axis=-1)
        keep = ops.cast(ranks >= self.m - self.n, "float32")
        return ops.moveaxis(ops.reshape(keep, moved_shape), -1, input_axis)

    def get_config(self):
        return {"n": self.n, "m": self.m}

    def __repr__(self):
        return f"NM({self.n}, {self.m})"


@keras.saving.register_keras_serializable(package="kcompress")
class Block(SparsityPattern):
    """Prunes whole blocks of the kernel, ranked by mean absolute value.

    The kernel is seen as a matrix ``(prod(shape[:-1]), shape[-1])`` (inputs by
    outputs) and cut into blocks of `shape`; both sides must divide evenly.

    Args:
        shape: Block shape ``(rows, cols)``, e.g. ``(1, 4)`` or ``(4, 4)``.

    Example:

    >>> import numpy as np
    >>> w = np.array([[1.0, 1.0, 0.1, 0.1]], "float32")
    >>> np.asarray(Block((1, 2)).compute_mask(w, 0.5)).tolist()
    [[1.0, 1.0, 0.0, 0.0]]
    """

    def __init__(self, shape):
        shape = tuple(shape) if isinstance(shape, (list, tuple)) else shape
        if (
            not isinstance(shape, tuple)
            or len(shape) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
        ):
            raise expected_error("a block shape of two positive integers", shape=shape)
        self.shape = shape

    def validate(self, shape, input_axis, name):
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows % self.shape[0] or cols % self.shape[1]:
            raise expected_error(
                f"the 2-D view ({rows}, {cols}) of weight '{name}' to be "
                f"divisible by the block shape {self.shape}",
                shape=tuple(shape),
            )

    def compute_mask(self, weights, sparsity, input_axis=0, previous_mask=None):
        del input_axis
        shape = ops.shape(weights)
        rows, cols = self.shape
        matrix = ops.reshape(_scores(weights, previous_mask), (-1, shape[-1]))
        num_rows, num_cols = ops.shape(matrix)
        blocks = ops.reshape(matrix, (num_rows // rows, rows, num_cols // cols, cols))
        scores = ops.mean(blocks, axis=(1, 3))
        keep = ops.reshape(_keep_top(ops.reshape(scores, (-1,)), sparsity), ops.shape(scores))
        keep = ops.repeat(ops.repeat(keep, rows, axis=0), cols, axis=1)
        return ops.reshape(keep, shape)

    def get_config(self):
        return {"shape": list(self.shape)}

    def __repr__(self):
        return f"Block({self.shape})"


def get(pattern):
    """Returns a `SparsityPattern` from None (unstructured), a pattern or a config."""
    if pattern is None:
        return Unstructured()
    if isinstance(pattern, SparsityPattern):
        return pattern
    if isinstance(pattern, dict):
        return keras.saving.deserialize_keras_object(pattern)
    raise expected_error(
        "pattern to be None, pruning.NM(n, m) or pruning.Block(shape)",
        pattern=pattern,
    )
