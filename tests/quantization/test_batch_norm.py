"""BatchNormalization folding: Conv/Depthwise/Dense + BN (+ ReLU) train and export as one int8 op."""

import keras
import numpy as np
import pytest

import tflite_export
from kcompress import clustering, pruning, quantization
from kcompress.quantization import folding
from kcompress.quantization.affine import QuantizeAffine
from kcompress.quantization.conv_batch_norm import QuantizeConvBatchNorm
from tests.helpers import mobile_cnn, save_and_load
from tests.quantization.qhelpers import fit, outputs


def randomize_batch_norms(model, seed=0):
    """Gives every BatchNormalization statistics far from the identity, so folding matters."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.3, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
    return model


def conv_bn_cnn(seed=0):
    """Conv2D → BN → ReLU6, DepthwiseConv2D → BN → ReLU, a residual Add, Dense → BN, Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU(6.0, name="conv_relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    y = keras.layers.BatchNormalization(name="depthwise_bn")(y)
    y = keras.layers.Activation("relu", name="depthwise_relu")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(6, name="fc")(x)
    x = keras.layers.BatchNormalization(name="fc_bn")(x)
    return randomize_batch_norms(keras.Model(inputs, keras.layers.Dense(3, name="logits")(x)), seed)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(size=(32, 8, 8, 3)).astype("float32")


@pytest.fixture(scope="module")
def trained(images):
    """``(float model, its QAT model fitted for 2 steps)``."""
    model = conv_bn_cnn()
    labels = np.random.default_rng(2).integers(0, 3, len(images))
    return model, fit(quantization.quantize_model(model), images, labels)


def test_folds_each_conv_batch_norm_relu_chain():
    qat = quantization.quantize_model(conv_bn_cnn())
    kinds = {layer.name: type(layer).__name__ for layer in qat.layers}
    assert kinds["quant_conv"] == kinds["quant_depthwise"] == kinds["quant_fc"] == "QuantizeConvBatchNorm"
    assert {kinds[name] for name in ("conv_bn", "conv_relu", "depthwise_bn", "depthwise_relu", "fc_bn")} == {
        "FoldedLayer"
    }
    wrappers = {w.layer.name: w.activation for w in qat.layers if isinstance(w, QuantizeConvBatchNorm)}
    assert wrappers == {"conv": "relu6", "depthwise": "relu", "fc": None}


@pytest.mark.parametrize("name", ["conv", "depthwise", "fc"])
def test_folded_float_weights_compute_the_layer_then_its_batch_norm(name, images):
    model = conv_bn_cnn()
    qat = quantization.quantize_model(model)
    wrapper = qat.get_layer(f"quant_{name}")
    layer, norm = model.get_layer(name), model.get_layer(f"{name}_bn")
    x = keras.Model(model.input, layer.input)(images)
    kernel, bias = wrapper.folded_float_weights()
    plain = type(layer).from_config({**layer.get_config(), "use_bias": True, "name": "plain"})
    plain.build(x.shape)
    plain.set_weights([keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(bias)])
    expected = norm(layer(x), training=False)
    np.testing.assert_allclose(plain(x), expected, atol=1e-5, rtol=1e-5)


def test_training_normalizes_with_batch_statistics_and_moves_the_moving_ones(images):
    model = conv_bn_cnn()
    qat = quantization.quantize_model(model)
    wrapper, layer, norm = qat.get_layer("quant_conv"), model.get_layer("conv"), model.get_layer("conv_bn")
    before = keras.ops.convert_to_numpy(norm.moving_mean).copy()
    expected = keras.ops.relu6(norm(layer(images), training=True))  # Keras' own BN moves its statistics too.
    got = wrapper(images, training=True)
    # Batch statistics, not the (random) moving ones; the kernel is int8-rounded, so a few steps apart.
    step = float(np.ptp(expected)) / 255
    assert np.max(np.abs(np.asarray(got) - np.asarray(expected))) < 4 * step
    moved = keras.ops.convert_to_numpy(wrapper.batch_norm.moving_mean)
    np.testing.assert_allclose(moved, keras.ops.convert_to_numpy(norm.moving_mean), atol=1e-3)
    assert np.max(np.abs(moved - before)) > 1e-4


def test_int8_file_is_within_one_output_step_of_the_qat_model(trained, images, tmp_path):
    _, qat = trained
    path = tmp_path / "cnn.tflite"
    conversion = tflite_export.convert(qat, path, mode="int8")
    assert conversion.float_ops == {} and conversion.model.is_full_integer()
    # Each Conv/Depthwise/Dense + BN (+ ReLU) is one op: no MUL or ADD of a normalization left.
    assert conversion.model.op_counts() == {
        "CONV_2D": 1,
        "DEPTHWISE_CONV_2D": 1,
        "ADD": 1,
        "MEAN": 1,
        "FULLY_CONNECTED": 2,
    }
    check = tflite_export.verify(qat, path, images)
    assert check.max_diff_in_steps <= 1.0 + 1e-6
    assert check.agreement >= 0.99


def test_saved_and_loaded_qat_model_computes_the_same(trained, images):
    _, qat = trained
    loaded = save_and_load(qat)
    np.testing.assert_array_equal(outputs(loaded, images), outputs(qat, images))
    assert isinstance(loaded.get_layer("quant_depthwise"), QuantizeConvBatchNorm)


def test_strip_gives_the_plain_architecture_with_folded_weights(trained, images):
    _, qat = trained
    plain = quantization.strip_quantization(qat)
    kinds = {layer.name: type(layer).__name__ for layer in plain.layers}
    assert (kinds["conv"], kinds["conv_bn"], kinds["conv_relu"], kinds["fc_bn"]) == (
        "Conv2D",
        "BatchNormalization",
        "ReLU",
        "BatchNormalization",
    )
    assert not any(type(layer).__module__.startswith("kcompress") for layer in plain._flatten_layers())
    # The QAT model also rounds activations; the stripped one only holds the rounded weights.
    with quantization.quantizers.leaving_float(lambda q: True):
        expected = outputs(qat, images)
    np.testing.assert_allclose(outputs(plain, images), expected, atol=1e-4)


def test_pruned_zeros_stay_zero_in_the_folded_kernel(images):
    model = conv_bn_cnn()
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=pruning.ConstantSparsity(0.5, 0), layers=["conv"])
    pruned.compile("adam", "mse")
    pruned.fit(images, np.zeros((len(images), 3)), epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip_pruning(pruned)
    zeros = keras.ops.convert_to_numpy(stripped.get_layer("conv").kernel) == 0
    assert zeros.mean() >= 0.5
    qat = fit(quantization.quantize_model(stripped), images, np.zeros(len(images), "int32"))
    folded = keras.ops.convert_to_numpy(qat.get_layer("quant_conv").quantized_weights()[0][1])
    assert np.all(folded[zeros] == 0)


def test_clustered_kernel_stays_tied_under_folding(images):
    model = conv_bn_cnn()
    clustered = clustering.strip_clustering(clustering.cluster_weights(model, number_of_clusters=4, layers=["conv"]))
    config = quantization.QuantizationConfig(preserve_clusters=True)
    qat = fit(quantization.quantize_model(clustered, config=config), images, np.zeros(len(images), "int32"))
    wrapper = qat.get_layer("quant_conv")
    assert wrapper.tied_clusters == 4
    assert len(np.unique(keras.ops.convert_to_numpy(wrapper.layer.kernel))) <= 4


def test_batch_norm_with_nothing_to_fold_into_becomes_an_int8_affine_op(images, tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization(name="input_bn")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    model = randomize_batch_norms(keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)))
    qat = quantization.quantize_model(model)
    assert isinstance(qat.get_layer("quant_input_bn"), QuantizeAffine)
    quantization.calibrate(qat, images)
    conversion = tflite_export.convert(qat, tmp_path / "bn.tflite", mode="int8")
    assert conversion.float_ops == {} and conversion.model.is_full_integer()
    assert {"MUL", "ADD"} <= set(conversion.model.op_counts())
    assert tflite_export.verify(qat, tmp_path / "bn.tflite", images).max_diff_in_steps <= 1.0 + 1e-6


def test_find_folds_skips_shared_and_multiply_read_layers():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(4, name="dense")
    x = dense(inputs)
    y = keras.layers.BatchNormalization(name="bn")(x)
    z = keras.layers.Add()([x, y])  # `dense`'s output is read twice: nothing to fold.
    model = keras.Model(inputs, z)
    assert folding.find_folds(model) == {}


def test_conv_batch_norm_rejects_a_layer_it_cannot_fold_into():
    with pytest.raises(ValueError, match="Expected a layer a BatchNormalization folds into"):
        QuantizeConvBatchNorm(keras.layers.Embedding(4, 2), batch_norm=keras.layers.BatchNormalization())
    with pytest.raises(ValueError, match="Expected activation None, 'relu' or 'relu6'"):
        QuantizeConvBatchNorm(keras.layers.Dense(2), batch_norm=keras.layers.BatchNormalization(), activation="gelu")


def test_every_cnn_op_gets_its_int8_range_and_round_trips(images, tmp_path):
    model = mobile_cnn()
    qat = quantization.quantize_model(model)
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert {"QuantizeAffine", "QuantizeConvBatchNorm", "QuantizeOperation", "FoldedLayer"} <= set(kinds)
    pixels = (images - images.min()) / np.ptp(images) * 255
    quantization.calibrate(qat, pixels)
    np.testing.assert_array_equal(outputs(save_and_load(qat), pixels), outputs(qat, pixels))
    conversion = tflite_export.convert(qat, tmp_path / "mobile.tflite", mode="int8")
    assert conversion.model.is_full_integer() and conversion.float_ops == {}
    check = tflite_export.verify(qat, tmp_path / "mobile.tflite", pixels)
    assert check.max_diff_in_steps <= 1.0 + 1e-6
    stripped = quantization.strip_quantization(qat)
    assert not any(type(layer).__module__.startswith("kcompress") for layer in stripped._flatten_layers())


def test_padding_after_a_folded_chain_keeps_its_scale_into_the_next_conv(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(keras.layers.ZeroPadding2D(1)(x))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    data = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 3)).astype("float32")
    qat = quantization.quantize_model(model)
    # The int8 PAD keeps its input's scale: the conv after it must not learn a range of its own
    # (training would move it away from the ReLU6's, and the file could not hold both).
    assert qat.get_layer("quant_dw").quantize_input is False
    quantization.calibrate(qat, data)
    tflite_export.convert(qat, tmp_path / "pad.tflite", mode="int8")
    assert tflite_export.compare_tensors(qat, tmp_path / "pad.tflite", data, max_examples=4).first_drift() is None
