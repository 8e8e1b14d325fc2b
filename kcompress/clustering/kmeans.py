"""One-dimensional k-means in NumPy: centroid initializers and Lloyd steps.

Clustering a kernel is k-means on its values (a 1-D problem), so the nearest
centroid is found with `np.searchsorted` on the midpoints of the sorted
centroids (``O(n log k)``) and the means with `np.bincount`: fast enough for
an 11.7M-entry embedding table. Everything here is a pure function of its
arguments (and a seed), free of Keras state.
"""

import numpy as np

from kcompress._errors import check_int, expected_error

# Points used to seed k-means++ (it draws k points one at a time, each pass over them).
_SEED_SAMPLE = 65536


def _linear(values, k, rng):
    """Evenly spaced between the smallest and the largest value (tfmot's "linear")."""
    return np.linspace(values.min(), values.max(), k)


def _density(values, k, rng):
    """At the quantiles of the values, so dense regions get more centroids (tfmot's CDF init)."""
    return np.quantile(values, (np.arange(k) + 0.5) / k)


def _kmeans_plus_plus(values, k, rng):
    """k-means++ seeding: each new centroid drawn with probability ∝ squared distance."""
    sample = values if values.size <= _SEED_SAMPLE else rng.choice(values, _SEED_SAMPLE, replace=False)
    centroids = [sample[rng.integers(sample.size)]]
    distance = (sample - centroids[0]) ** 2
    for _ in range(1, k):
        total = distance.sum()
        if total <= 0:  # Fewer distinct values than k: repeat one, it stays empty.
            centroids.append(centroids[-1])
            continue
        centroids.append(sample[rng.choice(sample.size, p=distance / total)])
        distance = np.minimum(distance, (sample - centroids[-1]) ** 2)
    return np.asarray(centroids)


INITIALIZERS = {
    "kmeans++": _kmeans_plus_plus,
    "linear": _linear,
    "density": _density,
}


def check_init(init):
    """Raises unless `init` names one of `INITIALIZERS`; returns it."""
    if init not in INITIALIZERS:
        raise expected_error(f"init in {tuple(INITIALIZERS)}", init=init)
    return init


def assign(values, centroids):
    """Index of the nearest centroid for each value (ties go to the lower one).

    Example:

    >>> assign(np.array([0.1, 0.9, 0.4]), np.array([0.0, 1.0])).tolist()
    [0, 1, 0]
    """
    order = np.argsort(centroids, kind="stable")
    ordered = np.asarray(centroids, np.float64)[order]
    midpoints = (ordered[1:] + ordered[:-1]) / 2
    return order[np.searchsorted(midpoints, np.asarray(values, np.float64), side="right")]


def kmeans(values, number_of_clusters, init="kmeans++", iterations=10, seed=0):
    """Clusters values into `number_of_clusters` centroids.

    Args:
        values: Array of any shape (flattened).
        number_of_clusters: Number of centroids, >= 1. With fewer distinct
            values than that, some centroids are left without members.
        init: Initializer name: ``"kmeans++"``, ``"linear"`` or ``"density"``.
        iterations: Lloyd iterations after the initialization (0 keeps the
            initial centroids, as tfmot does).
        seed: Seed of the k-means++ draws.

    Returns:
        ``(centroids, assignments)``: float32 centroids of shape
        ``(number_of_clusters,)`` and int32 indices of `values`' shape.

    Example:

    >>> centroids, assignments = kmeans(np.array([0.0, 0.1, 5.0, 5.2]), 2)
    >>> sorted(round(float(c), 2) for c in centroids)
    [0.05, 5.1]
    >>> len(set(assignments[:2])), len(set(assignments[2:])), bool(assignments[0] != assignments[2])
    (1, 1, True)
    """
    k = check_int("number_of_clusters", number_of_clusters, minimum=1)
    iterations = check_int("iterations", iterations, minimum=0)
    values = np.asarray(values)
    flat = values.astype(np.float64).ravel()
    if flat.size == 0:
        raise expected_error("a non-empty weight to cluster", shape=values.shape)
    centroids = INITIALIZERS[check_init(init)](flat, k, np.random.default_rng(seed)).astype(np.float64)
    for _ in range(iterations):
        members = assign(flat, centroids)
        counts = np.bincount(members, minlength=k)
        sums = np.bincount(members, weights=flat, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = updated
    assignments = assign(flat, centroids).reshape(values.shape).astype(np.int32)
    centroids = centroids.astype(np.float32)
    # TensorFlow and XNNPACK flush float32 subnormals to zero: a centroid is one of the values they compute with.
    centroids[np.abs(centroids) < np.finfo(np.float32).tiny] = 0.0
    return centroids, assignments
