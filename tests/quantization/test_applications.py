"""keras.applications CNNs end to end: prune → strip → QAT → full-int8 `.tflite` (batch 1) → verify → Edge TPU.

At 32x32 with random weights and a few eager steps; the 96x96 trained runs are in
``benchmarks/cnn_edge.py``.
"""

import keras
import numpy as np
import pytest
from keras.src.applications import efficientnet

import tflite_export
from kcompress import pruning, quantization
from kcompress.quantization.conv_batch_norm import QuantizeConvBatchNorm

A = keras.applications
SHAPE = (32, 32, 3)


def _tiny_efficientnet():
    """EfficientNetB0's stem, an MBConv block with expansion, squeeze-excite and a residual, and its head."""
    blocks = [
        {"kernel_size": 3, "repeats": 1, "filters_in": 32, "filters_out": 16, "expand_ratio": 1,
         "id_skip": True, "strides": 1, "se_ratio": 0.25},
        {"kernel_size": 3, "repeats": 2, "filters_in": 16, "filters_out": 24, "expand_ratio": 6,
         "id_skip": True, "strides": 2, "se_ratio": 0.25},
    ]  # fmt: skip
    return efficientnet.EfficientNet(
        0.5, 1.0, 32, blocks_args=blocks, weights=None, input_shape=SHAPE, classes=4, classifier_activation=None
    )


def _resnet_block():
    """A small ResNet-style model: padded strided stem, max pooling, a bottleneck block with a projection."""
    inputs = keras.Input(SHAPE)
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    shortcut = keras.layers.BatchNormalization()(keras.layers.Conv2D(32, 1)(x))
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 1)(x)))
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(y)))
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(32, 1)(y))
    x = keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))
    x = keras.layers.Concatenate()([x, keras.layers.AveragePooling2D(1)(x)])
    x = keras.layers.Flatten()(keras.layers.GlobalMaxPooling2D(keepdims=True)(x))
    return keras.Model(inputs, keras.layers.Dense(4)(x))


# name -> (builder, pixel scale of its input, whether every op must map to the Edge TPU: None = not checked)
MODELS = {
    "mobilenet_v2": (
        lambda: A.MobileNetV2(input_shape=SHAPE, alpha=0.35, weights=None, classes=4, classifier_activation=None),
        "unit",  # expects [-1, 1]
        True,
    ),
    "mobilenet_v3_small_minimalistic": (
        lambda: A.MobileNetV3Small(
            input_shape=SHAPE, alpha=0.75, minimalistic=True, weights=None, classes=4, classifier_activation=None
        ),
        "pixels",  # Rescaling inside
        True,
    ),
    "mobilenet_v3_small": (
        lambda: A.MobileNetV3Small(input_shape=SHAPE, alpha=0.75, weights=None, classes=4, classifier_activation=None),
        "pixels",
        False,  # HARD_SWISH is not an Edge TPU op
    ),
    "efficientnet_blocks": (_tiny_efficientnet, "pixels", None),
    "resnet_block": (_resnet_block, "unit", True),
}


def _data(scale, n=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, *SHAPE)).astype("float32")
    return (images / 127.5 - 1.0 if scale == "unit" else images), rng.integers(0, 4, n)


def _fit(model, x, y, callbacks=()):
    model.compile(
        keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=list(callbacks))
    return model


def compress_to_int8(model, x, y, path, train_qat=True):
    """Prunes 50% (a step), strips, QAT (a step, if `train_qat`), calibrates, converts to int8; returns the QAT model.

    An eager QAT step of a MobileNet takes ~10 s (the XLA-compiled rounding, per kernel shape); the
    folded layers' training path is in ``test_batch_norm.py`` and in the ResNet and EfficientNet blocks here.
    """
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=pruning.ConstantSparsity(0.5, 0))
    stripped = pruning.strip_pruning(_fit(pruned, x, y, [pruning.UpdatePruningStep()]))
    qat = quantization.quantize_model(stripped)
    if train_qat:
        _fit(qat, x, y)
    quantization.calibrate(qat, x)  # Ranges of inference activations (the moving statistics moved little).
    conversion = tflite_export.convert(qat, path, mode="int8")
    assert conversion.model.is_full_integer() and conversion.float_ops == {}
    assert conversion.model.inputs[0].shape[0] == 1
    return qat


# MobileNetV3Small's full variant (HARD_SWISH: full int8, not for an Edge TPU) takes 35 s: `large`.
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.large) if n == "mobilenet_v3_small" else n for n in MODELS]
)
def test_application_compresses_to_a_full_int8_file_that_matches_it(name, tmp_path):
    build, scale, edge_tpu_ready = MODELS[name]
    model = build()
    x, y = _data(scale)
    path = tmp_path / f"{name}.tflite"
    qat = compress_to_int8(model, x, y, path, train_qat=name in ("efficientnet_blocks", "resnet_block"))
    folded = [w for w in quantization.quantization_wrappers(qat) if isinstance(w, QuantizeConvBatchNorm)]
    batch_norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(folded) == len(batch_norms)  # Every BatchNormalization of these models follows a conv.
    check = tflite_export.verify(qat, path, x)
    assert check.agreement >= 0.99
    assert check.within_one_step >= 0.99
    report = tflite_export.check_edgetpu(path)
    if edge_tpu_ready:
        assert report.ready and report.mapped_ops == report.total_ops
    elif edge_tpu_ready is False:
        assert not report.ready and report.first_cpu_op[1] == "HARD_SWISH"
        assert "HARD_SWISH" in "\n".join(report.problems)


@pytest.mark.large
def test_efficientnet_b0_compresses_to_a_full_int8_file(tmp_path):
    x, y = _data("pixels", n=8)
    model = A.EfficientNetB0(input_shape=SHAPE, weights=None, classes=4, classifier_activation=None)
    qat = compress_to_int8(model, x, y, tmp_path / "b0.tflite")
    assert tflite_export.verify(qat, tmp_path / "b0.tflite", x).agreement >= 0.99
    assert tflite_export.check_edgetpu(tmp_path / "b0.tflite").total_ops > 200
