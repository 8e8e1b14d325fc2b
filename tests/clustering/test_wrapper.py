import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress.clustering import ClusterWeights
from tests.helpers import run_serialization_test


def built(layer, input_shape, **kwargs):
    wrapper = ClusterWeights(layer, **kwargs)
    wrapper(np.zeros(input_shape, "float32"))
    return wrapper


def test_config_round_trip():
    wrapper = ClusterWeights(
        keras.layers.Dense(4),
        number_of_clusters=5,
        init="density",
        iterations=3,
        gradient_aggregation="mean",
        keep_zeros=["kernel"],
        seed=7,
    )
    restored = run_serialization_test(wrapper)
    for name in (
        "number_of_clusters",
        "init",
        "iterations",
        "gradient_aggregation",
        "keep_zeros",
        "seed",
        "weight_names",
    ):
        assert getattr(restored, name) == getattr(wrapper, name), name
    assert isinstance(restored.layer, keras.layers.Dense)


def test_runs_with_gathered_kernel_and_freezes_the_original():
    wrapper = built(keras.layers.Dense(8), (2, 16), number_of_clusters=3)
    kernel = keras.ops.convert_to_numpy(wrapper.clustered_values()[0])
    assert len(np.unique(kernel)) == 3
    x = np.random.default_rng(0).standard_normal((2, 16)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapper(x)), x @ kernel + wrapper.layer.bias.numpy(), atol=1e-5
    )
    assert not wrapper.layer.kernel.trainable and wrapper.layer.bias.trainable
    assert [v.name for v in wrapper.trainable_weights] == ["kernel_centroids", "bias"]
    assert wrapper.assignments[0].dtype == "int32"


@pytest.mark.parametrize(
    ("layer", "shape", "weights"),
    [
        (keras.layers.SeparableConv2D(4, 3), (1, 6, 6, 3), ["depthwise_kernel", "pointwise_kernel"]),
        (keras.layers.Conv1D(4, 3), (1, 6, 3), ["kernel"]),
        (keras.layers.DepthwiseConv2D(3), (1, 6, 6, 3), ["kernel"]),
        (keras.layers.EinsumDense("abc,cd->abd", (None, 4)), (1, 2, 3), ["kernel"]),
        (keras.layers.Embedding(10, 4), (1, 3), ["embeddings"]),
    ],
)
def test_layer_families(layer, shape, weights):
    wrapper = ClusterWeights(layer, number_of_clusters=2)
    wrapper(np.zeros(shape, "int32" if isinstance(layer, keras.layers.Embedding) else "float32"))
    assert list(wrapper.weight_names) == weights
    assert all(len(np.unique(keras.ops.convert_to_numpy(v))) <= 2 for v in wrapper.clustered_values())


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_centroid_gradient_aggregation(aggregation):
    wrapper = built(
        keras.layers.Dense(4, use_bias=False), (1, 6), number_of_clusters=3, gradient_aggregation=aggregation
    )
    x = np.ones((1, 6), "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wrapper(x) * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
    gradient = tape.gradient(loss, wrapper.centroids[0]).numpy()
    assignments = wrapper.assignments[0].numpy()
    member = np.broadcast_to(np.array([1.0, 2.0, 3.0, 4.0]), (6, 4))  # d loss / d kernel
    expected = np.bincount(assignments.ravel(), weights=member.ravel(), minlength=3)
    if aggregation == "mean":
        expected = expected / np.maximum(np.bincount(assignments.ravel(), minlength=3), 1)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5)


def test_keep_zeros_pins_a_zero_centroid():
    layer = keras.layers.Dense(4, use_bias=False)
    layer.build((None, 6))
    layer.kernel.assign(np.where(np.arange(24).reshape(6, 4) % 3 == 0, 0.0, layer.kernel.numpy()))
    wrapper = ClusterWeights(layer, number_of_clusters=3)
    assert wrapper.keep_zeros == ["kernel"]
    wrapper.build()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wrapper(np.ones((1, 6), "float32")))
    assert tape.gradient(loss, wrapper.centroids[0]).numpy()[0] == 0
    wrapper.centroids[0].assign(wrapper.centroids[0] + 1.0)  # Even a moved centroid 0 runs as zero.
    kernel = keras.ops.convert_to_numpy(wrapper.clustered_values()[0])
    np.testing.assert_array_equal(kernel == 0, layer.kernel.numpy() == 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((keras.layers.LayerNormalization(),), {}, "Expected a layer kcompress can cluster (Dense, EinsumDense"),
        (("dense",), {}, "Expected a keras.layers.Layer to cluster. Received: layer='dense'"),
        ((keras.layers.Dense(2),), {"number_of_clusters": 1}, "Expected number_of_clusters >= 2"),
        ((keras.layers.Dense(2),), {"init": "x"}, "Expected init in"),
        ((keras.layers.Dense(2),), {"iterations": -2}, "Expected iterations >= 0"),
        ((keras.layers.Dense(2),), {"weight_names": ["bias"]}, "Expected weight_names of Dense among ('kernel',)"),
        ((keras.layers.Dense(2),), {"keep_zeros": ["bias"]}, "Expected keep_zeros among the clustered weights"),
        ((keras.layers.Dense(2),), {"gradient_aggregation": None}, "Expected gradient_aggregation in"),
    ],
)
def test_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError) as error:
        ClusterWeights(*args, **kwargs)
    assert message in str(error.value)
