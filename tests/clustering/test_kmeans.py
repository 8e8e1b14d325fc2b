import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kcompress.clustering import kmeans as kmeans_lib
from kcompress.clustering import tying
from kcompress.clustering.kmeans import INITIALIZERS, assign, kmeans
from kcompress.clustering.wrapper import initial_clusters


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_each_init_finds_well_separated_clusters(init):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(c, 0.01, 200) for c in (-1.0, 0.0, 2.0)])
    centroids, assignments = kmeans(values, 3, init=init, iterations=20)
    np.testing.assert_allclose(np.sort(centroids), [-1.0, 0.0, 2.0], atol=0.01)
    assert centroids.dtype == np.float32 and assignments.dtype == np.int32
    assert assignments.shape == values.shape
    # Each value sits in the cluster of its nearest centroid.
    np.testing.assert_array_equal(assignments, assign(values, centroids))


def test_linear_and_density_inits_are_the_documented_points():
    values = np.arange(11, dtype="float64")
    np.testing.assert_allclose(kmeans_lib._linear(values, 3, None), [0, 5, 10])
    np.testing.assert_allclose(kmeans_lib._density(values, 2, None), [2.5, 7.5])


def test_lloyd_iterations_do_not_increase_the_error():
    values = np.random.default_rng(1).standard_normal(5000)

    def error(iterations):
        centroids, assignments = kmeans(values, 8, init="linear", iterations=iterations)
        return np.sum((values - centroids[assignments]) ** 2)

    assert error(10) <= error(1) <= error(0)


def test_fewer_distinct_values_than_clusters():
    values = np.array([1.0, 1.0, 2.0, 2.0])
    centroids, assignments = kmeans(values, 5)
    assert centroids.shape == (5,)
    np.testing.assert_array_equal(centroids[assignments], values)


def test_same_seed_same_clusters():
    values = np.random.default_rng(2).standard_normal(300)
    first, second = kmeans(values, 6, seed=3), kmeans(values, 6, seed=3)
    np.testing.assert_array_equal(first[0], second[0])


def test_kmeans_plus_plus_samples_large_weights():
    values = np.random.default_rng(3).standard_normal(kmeans_lib._SEED_SAMPLE * 3)
    centroids, assignments = kmeans(values, 16, iterations=2)
    assert len(np.unique(centroids[assignments])) <= 16


def test_initial_clusters_pin_zeros():
    values = np.array([0.0, 0.0, 0.5, -0.7, 0.9, 0.0])
    centroids, assignments = initial_clusters(values, 3, "kmeans++", 5, 0, keep_zeros=True)
    assert centroids[0] == 0
    np.testing.assert_array_equal(assignments == 0, values == 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"number_of_clusters": 0}, "Expected number_of_clusters >= 1. Received: number_of_clusters=0"),
        ({"number_of_clusters": 2.5}, "Expected number_of_clusters to be an integer"),
        ({"init": "forgy"}, "Expected init in ('kmeans++', 'linear', 'density'). Received: init='forgy'"),
        ({"iterations": -1}, "Expected iterations >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        kmeans(np.ones(4), **{"number_of_clusters": 2, **kwargs})
    assert message in str(error.value)


@settings(max_examples=25, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=12),
        elements=st.floats(-10, 10, width=32, allow_subnormal=False),
    ),
    k=st.integers(2, 20),
    init=st.sampled_from(sorted(INITIALIZERS)),
)
# Found by hypothesis: the mean of the smallest normal float32 and 0 is subnormal, which TF flushes to 0.
@example(values=np.array([1.1754944e-38, 0.0], np.float32), k=2, init="density")
def test_property_at_most_k_values_and_ties_round_trip(values, k, init):
    centroids, assignments = kmeans(values, k, init=init, iterations=3)
    clustered = centroids[assignments]
    assert clustered.shape == values.shape
    assert len(np.unique(clustered)) <= k
    # find_ties reads the clusters back; tie() is then the identity.
    count, ties = tying.find_ties(clustered)
    assert count <= k
    np.testing.assert_array_equal(np.asarray(tying.tie(clustered, ties, count)), clustered)


def test_tie_gives_each_member_its_cluster_mean_gradient():
    import tensorflow as tf

    values = tf.Variable([1.0, 1.0, 1.0, 4.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tying.tie(values, np.array([0, 0, 0, 1]), 2) * tf.constant([1.0, 2.0, 6.0, 5.0]))
    np.testing.assert_allclose(tape.gradient(loss, values).numpy(), [3.0, 3.0, 3.0, 5.0])


def test_tie_is_exact_for_tiny_values():
    # Found by the property above: 3.4776987e-34 * 8 values; `mean + (shared - mean)` lost the
    # subnormal difference and returned the float32 mean instead of the shared value.
    values = np.full((2, 4), 3.4776988889640356e-34, np.float32)
    np.testing.assert_array_equal(np.asarray(tying.tie(values, np.zeros((2, 4), "int32"), 1)), values)
