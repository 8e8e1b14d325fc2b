"""`XNNPackSparse`: which layers it prunes, which models it refuses, and that its models save and load."""

import keras
import numpy as np
import pytest

from kcompress import pruning
from tests.helpers import mobilenet_like, run_serialization_test, save_and_load, subclassed_mlp

L = keras.layers


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return mobilenet_like()


@pytest.fixture(scope="module")
def mobilenet_v2():
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4)


def wrapped(pruned):
    return sorted(wrapper.layer.name for wrapper in pruning.pruning_wrappers(pruned))


def test_prunes_the_1x1_convolutions_only(model):
    assert sorted(layer.name for layer in pruning.XNNPackSparse().select(model)) == ["pw_1", "pw_2", "pw_3"]
    pruned = pruning.prune_low_magnitude(model, pruning.ConstantSparsity(0.75), policy=pruning.XNNPackSparse())
    assert wrapped(pruned) == ["pw_1", "pw_2", "pw_3"]  # Not the stem, the depthwise ones or the classifier.


def test_classifier_too(model, mobilenet_v2):
    assert pruning.XNNPackSparse(classifier=True).select(model)[-1].name == "classifier"
    selected = pruning.XNNPackSparse(check_padding=False, classifier=True).select(mobilenet_v2)
    assert len(selected) == 35 and selected[-1].name == "predictions"


def test_layers_narrow_the_policy(model):
    pruned = pruning.prune_low_magnitude(model, layers=["pw_2", "classifier"], policy=pruning.XNNPackSparse())
    assert wrapped(pruned) == ["pw_2"]


def test_sequential_model():
    stack = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            L.ZeroPadding2D(1),
            L.Conv2D(4, 3, strides=2),
            L.Conv2D(8, 1, name="pw"),
            L.GlobalAveragePooling2D(),
            L.Dense(2),
        ]
    )
    assert [layer.name for layer in pruning.XNNPackSparse().select(stack)] == ["pw"]


def test_mobilenet_v2_padding_is_refused(mobilenet_v2):
    # Its Conv1 and stride-2 depthwise convolutions are TensorFlow 'same' or padded unevenly: XNNPACK runs it dense.
    with pytest.raises(ValueError, match=r"Expected the first Conv2D to be padded by 1 on every side.*Conv1 \(Conv2D"):
        pruning.XNNPackSparse().select(mobilenet_v2)


def test_mobilenet_v2_without_the_padding_check(mobilenet_v2):
    pointwise = sorted(
        layer.name for layer in mobilenet_v2.layers if type(layer) is L.Conv2D and layer.kernel_size == (1, 1)
    )
    assert len(pointwise) == 34 and {"expanded_conv_project", "block_16_project", "Conv_1"} <= set(pointwise)
    pruned = pruning.prune_low_magnitude(mobilenet_v2, policy=pruning.XNNPackSparse(check_padding=False))
    assert wrapped(pruned) == pointwise  # Not Conv1, the depthwise convolutions or predictions.


def _conv_3x3(x):
    return L.Conv2D(16, 3, padding="same", name="conv_3x3")(x)


def _concatenate(x):
    return L.Concatenate(name="concat")([x, x])


def _features_output():
    x = inputs = keras.Input((16, 16, 3))
    features = L.Conv2D(8, 1, name="features")(L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(x)))
    return keras.Model(inputs, [L.Dense(2)(L.GlobalAveragePooling2D()(features)), features])


def _same_stride_2(x):
    return L.DepthwiseConv2D(3, strides=2, padding="same", name="dw_same")(x)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: mobilenet_like(size=None), r"one image input of static height and width.*\(None, None, None, 3\)"),
        (
            lambda: mobilenet_like(first=lambda x: L.Conv2D(8, 3, padding="same", name="stem")(x)),
            r"Expected the first convolution to be a Conv2D 3x3 with strides 2 on 3 input channels\. "
            r"Received: layer=\"stem \(Conv2D, kernel_size=\(3, 3\), strides=\(1, 1\)",
        ),
        (lambda: mobilenet_like(channels=4), r"on 3 input channels.*input channels=4"),
        (
            lambda: mobilenet_like(first=lambda x: L.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)),
            r"first Conv2D to be padded by 1 on every side.*padding='same'",
        ),
        (lambda: mobilenet_like(middle=_conv_3x3), r"only 1x1 Conv2D layers.*conv_3x3 \(Conv2D, kernel_size=\(3, 3\)"),
        (lambda: mobilenet_like(middle=_concatenate), r"only layers XNNPACK runs in its sparse path.*concat"),
        (lambda: mobilenet_like(middle=_same_stride_2), r"padded by 1 on every side.*dw_same \(DepthwiseConv2D"),
        (lambda: mobilenet_like(pool=False), r"XNNPACK runs in its sparse path.*\(Flatten\)"),
        (_features_output, r"every output to come after a GlobalAveragePooling2D.*features \(Conv2D\)"),
        (lambda: mobilenet_like(middle=L.Activation("softmax")), r"Activation layers among.*'softmax'"),
        (
            lambda: keras.Sequential([keras.Input((8, 8, 3)), L.GlobalAveragePooling2D(), L.Dense(2)]),
            r"Expected the first convolution.*layer=None",
        ),
        (lambda: keras.Sequential([keras.Input((4,)), L.Dense(2)]), r"image input.*input_shapes=\(None, 4\)"),
        (lambda: subclassed_mlp(), r"Expected a Sequential or functional model"),
    ],
    ids=[
        "dynamic_size",
        "stride_1",
        "4_channels",
        "same_stem",
        "conv_3x3",
        "concat",
        "same_depthwise",
        "no_pooling",
        "output_inside",
        "softmax",
        "no_conv",
        "not_an_image",
        "subclassed",
    ],
)
def test_models_xnnpack_cannot_run_sparse(make, message):
    with pytest.raises(ValueError, match=message):
        pruning.prune_low_magnitude(make(), policy=pruning.XNNPackSparse())


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="Expected policy to be None or a kcompress.pruning.PruningPolicy"):
        pruning.prune_low_magnitude(model, policy="xnnpack")
    with pytest.raises(ValueError, match="a keras.Model with policy"):
        pruning.prune_low_magnitude(L.Conv2D(4, 1), policy=pruning.XNNPackSparse())
    with pytest.raises(ValueError, match="Expected check_padding to be True or False. Received: check_padding=1"):
        pruning.XNNPackSparse(check_padding=1)
    with pytest.raises(ValueError, match="Expected classifier to be True or False. Received: classifier=None"):
        pruning.XNNPackSparse(classifier=None)


def test_policy_serializes():
    policy = pruning.XNNPackSparse(check_padding=False, classifier=True)
    assert keras.saving.get_registered_name(pruning.XNNPackSparse) == "kcompress>XNNPackSparse"
    assert run_serialization_test(policy) == policy


def test_keras_file_round_trip(model):
    pruned = pruning.prune_low_magnitude(model, pruning.ConstantSparsity(0.75), policy=pruning.XNNPackSparse())
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    pruned.fit(x, np.zeros((4, 4)), epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    loaded = save_and_load(pruned, "xnnpack.keras")
    assert wrapped(loaded) == ["pw_1", "pw_2", "pw_3"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)
    stripped = pruning.strip_pruning(loaded)
    zeros = {layer.name: float(np.mean(layer.get_weights()[0] == 0)) for layer in stripped.layers if layer.weights}
    assert zeros["pw_1"] == zeros["pw_2"] == zeros["pw_3"] == 0.75
    assert zeros["stem"] == zeros["dw_1"] == zeros["classifier"] == 0.0
