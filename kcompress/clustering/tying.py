"""Keep a clustered kernel's values tied while something else trains it (QAT).

A stripped clustered kernel has at most k distinct values. Training it
further as a plain kernel (quantization-aware training) would untie them.
`find_ties` reads the clusters off the kernel (its distinct values) and
`tie` projects any kernel onto them: every weight runs as its cluster's
value with its cluster's mean gradient, so all members move together and the
kernel keeps at most k distinct values.
"""

import numpy as np
from keras import ops

# More distinct values than this is not a clustered kernel (int8 has 255 levels).
MAX_TIED_CLUSTERS = 256


def find_ties(values, max_clusters=MAX_TIED_CLUSTERS):
    """``(number of clusters, int32 assignments)`` of a kernel's distinct values, or None.

    Returns None when the kernel has more than `max_clusters` distinct values.

    Example:

    >>> count, assignments = find_ties(np.array([[0.5, -1.0], [0.5, 2.0]]))
    >>> count, assignments.tolist()
    (3, [[1, 0], [1, 2]])
    """
    values = np.asarray(values)
    distinct, inverse = np.unique(values, return_inverse=True)
    if distinct.size > max_clusters:
        return None
    return int(distinct.size), inverse.reshape(values.shape).astype(np.int32)


def tie(values, assignments, number_of_clusters):
    """Each value replaced by its cluster's value; its gradient by the cluster's mean gradient.

    The forward value is the cluster's largest member (exactly the shared
    value while the members are tied, with no rounding from a float sum);
    the gradient is that of the cluster mean, the same for every member.

    Example:

    >>> tied = tie(np.array([2.0, 2.0, 5.0], "float32"), np.array([0, 0, 1]), 2)
    >>> np.asarray(tied).tolist()
    [2.0, 2.0, 5.0]
    """
    flat = ops.reshape(values, (-1,))
    ids = ops.reshape(ops.cast(assignments, "int32"), (-1,))
    sums = ops.segment_sum(flat, ids, num_segments=number_of_clusters)
    counts = ops.segment_sum(ops.ones_like(flat), ids, num_segments=number_of_clusters)
    means = ops.take(sums / ops.maximum(counts, 1.0), ids)
    shared = ops.take(ops.segment_max(ops.stop_gradient(flat), ids, num_segments=number_of_clusters), ids)
    # `means - stop_gradient(means)` is exactly 0 forward (`means + (shared - means)` is not
    # when the difference is subnormal and the CPU flushes it to zero).
    return ops.reshape(shared + (means - ops.stop_gradient(means)), ops.shape(values))
