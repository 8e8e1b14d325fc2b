import json
import os
import tempfile
import zipfile

import keras
import keras_hub
import numpy as np
import pytest

from kcompress.quantization import (
    ActivationQuantizer,
    QuantizationConfig,
    QuantizeAttention,
    QuantizeEmbedding,
    QuantizeKernel,
    QuantizeLayerNorm,
    QuantizeOutput,
    QuantizeSeparableConv,
    quantization_wrappers,
    quantize_model,
    strip_quantization,
)
from tests.helpers import (
    data_for,
    functional_attention,
    functional_cnn,
    mlp,
    run_serialization_test,
    save_and_load,
    tiny_bert_classifier,
)
from tests.quantization.qhelpers import assert_on_int_grid, fit, kernel_layers, outputs, used_ranges

CONFIG = QuantizationConfig(weight_bits=4, ema_decay=0.9)


def wide_mlp():
    # 300 inputs: more rows per output channel than an int8 grid has levels.
    return mlp(input_dim=300, hidden=8)


@pytest.mark.parametrize(
    "make", [mlp, functional_cnn, functional_attention], ids=["sequential", "functional_cnn", "functional_attention"]
)
def test_keras_file_round_trip_after_fit(make):
    model = make()
    x, y = data_for(model, n=16)
    qat = fit(quantize_model(model), x, y, steps=2)

    loaded = save_and_load(qat)
    assert type(loaded) is type(qat)
    assert [type(w).__name__ for w in quantization_wrappers(loaded)] == [
        type(w).__name__ for w in quantization_wrappers(qat)
    ]
    np.testing.assert_allclose(outputs(loaded, x), outputs(qat, x), atol=1e-6)
    ranges = used_ranges(qat)
    assert ranges and used_ranges(loaded) == ranges
    for old, new in zip(quantization_wrappers(qat), quantization_wrappers(loaded)):
        assert new.config == old.config

    # Training goes on after loading (in graph mode), and moves the ranges.
    fit(loaded, x * 3.0, y, steps=2, run_eagerly=False)
    assert used_ranges(loaded) != ranges
    assert np.isfinite(outputs(loaded, x)).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: QuantizeKernel(keras.layers.Dense(4, activation="gelu"), CONFIG),
        lambda: QuantizeKernel(keras.layers.Dense(4), CONFIG, quantize_output=False, keep_zeros=True),
        lambda: QuantizeKernel(keras.layers.EinsumDense("ab,bc->ac", output_shape=3), CONFIG),
        lambda: QuantizeEmbedding(keras.layers.Embedding(10, 4), CONFIG),
        lambda: QuantizeAttention(keras.layers.MultiHeadAttention(num_heads=2, key_dim=4), CONFIG),
        lambda: QuantizeLayerNorm(keras.layers.LayerNormalization(epsilon=1e-5), CONFIG),
        lambda: QuantizeOutput(keras.layers.Add(), CONFIG, inputs=3),
        lambda: QuantizeSeparableConv(keras.layers.SeparableConv2D(4, 3, activation="gelu"), CONFIG),
        lambda: QuantizeOutput(keras.layers.Softmax(), CONFIG),
        lambda: QuantizeOutput(keras_hub.layers.PositionEmbedding(8), CONFIG, constant=True),
        lambda: ActivationQuantizer(CONFIG),
        lambda: ActivationQuantizer(CONFIG, fixed_range=(0.0, 255.0 / 256.0)),
    ],
    ids=[
        "kernel_gelu",
        "kernel_keep_zeros",
        "kernel_einsum",
        "embedding",
        "attention",
        "layer_norm",
        "add3",
        "separable_conv",
        "softmax",
        "position_embedding",
        "activation_quantizer",
        "fixed_range_quantizer",
    ],
)
def test_unbuilt_wrapper_config_round_trip(make):
    layer = make()
    restored = run_serialization_test(layer)
    assert type(restored) is type(layer)
    assert restored.config == layer.config == CONFIG
    if isinstance(layer, ActivationQuantizer):
        assert restored.fixed_range == layer.fixed_range
    else:
        assert restored.quantizers.keys() == layer.quantizers.keys()
        assert type(restored.layer) is type(layer.layer)


def built(layer, shape):
    layer.build(shape)
    return layer


X2 = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)


@pytest.mark.parametrize(
    "make, args",
    [
        (lambda: QuantizeKernel(keras.layers.Dense(4), CONFIG), (X2,)),
        (lambda: QuantizeEmbedding(keras.layers.Embedding(10, 4), CONFIG), (np.array([[1, 2]]),)),
        (lambda: QuantizeLayerNorm(keras.layers.LayerNormalization(), CONFIG), (X2,)),
        (
            lambda: QuantizeKernel(built(keras.layers.Conv1D(2, 3), (None, 5, 4)), CONFIG),
            (np.ones((1, 5, 4), "float32"),),
        ),
        (lambda: QuantizeOutput(keras.layers.ReLU(), CONFIG), (X2,)),
        (
            lambda: QuantizeSeparableConv(built(keras.layers.SeparableConv2D(2, 3), (None, 5, 5, 4)), CONFIG),
            (np.ones((1, 5, 5, 4), "float32"),),
        ),
        (lambda: ActivationQuantizer(CONFIG), (X2,)),
    ],
    ids=["kernel", "embedding", "layer_norm", "conv1d", "relu", "separable_conv", "activation_quantizer"],
)
def test_built_wrapper_config_round_trip(make, args):
    layer = make()
    layer(*args, training=True)
    restored = run_serialization_test(layer)
    assert restored.built and len(restored.weights) == len(layer.weights)


@pytest.mark.parametrize(
    "conv, shape",
    [(lambda: keras.layers.Conv1D(4, 3), (1, 6, 3)), (lambda: keras.layers.Conv2D(4, 3), (1, 6, 6, 3))],
    ids=["conv1d", "conv2d"],
)
def test_wrapping_an_unbuilt_conv_layer(conv, shape):
    layer = QuantizeKernel(conv(), CONFIG)
    restored = run_serialization_test(layer)
    assert not restored.built
    # Built on first call, with one weight scale per output channel.
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer(x, training=True)
    ((kernel, value),) = layer.quantized_weights()
    channels = np.asarray(value).reshape(-1, kernel.shape[-1])
    assert max(len(np.unique(channels[:, c])) for c in range(channels.shape[1])) <= 15
    np.testing.assert_allclose(np.abs(channels).max(axis=0), np.abs(np.asarray(kernel)).reshape(channels.shape).max(0))
    built_copy = run_serialization_test(layer)
    assert built_copy.built and len(built_copy.weights) == len(layer.weights)


def test_built_add_wrapper_config_round_trip():
    layer = QuantizeOutput(keras.layers.Add(), CONFIG)
    layer([X2, X2], training=True)
    assert layer.inputs == 2
    restored = run_serialization_test(layer)
    assert restored.inputs == 2 and restored.quantizers.keys() == {"output"}


def test_add_wrapper_built_for_three_inputs_learns_partial_range():
    layer = QuantizeOutput(keras.layers.Add(), CONFIG)
    layer([X2, X2, X2], training=True)
    assert layer.inputs == 3 and sorted(layer.quantizers) == ["output", "partial_1"]
    assert float(layer.quantizers["partial_1"].range_max.numpy()) == 2.0
    restored = run_serialization_test(layer)
    assert restored.built and len(restored.weights) == len(layer.weights)
    restored.set_weights(layer.get_weights())
    np.testing.assert_array_equal(restored([X2, X2, X2]), layer([X2, X2, X2]))


def test_built_attention_wrapper_config_round_trip():
    x = np.ones((1, 3, 8), "float32")
    layer = QuantizeAttention(keras.layers.MultiHeadAttention(num_heads=2, key_dim=4))
    layer(x, x)
    restored = run_serialization_test(layer)
    assert restored.get_build_config() == layer.get_build_config()
    assert restored.built and len(restored.weights) == len(layer.weights)


def test_built_attention_wrapper_copy_matches_apart_from_build_config():
    x = np.random.default_rng(0).normal(size=(1, 3, 8)).astype("float32")
    layer = QuantizeAttention(keras.layers.MultiHeadAttention(num_heads=2, key_dim=4))
    layer(x, x, training=True)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.built and len(restored.weights) == len(layer.weights)
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(restored(x, x), layer(x, x), atol=1e-6)


@pytest.fixture(scope="module")
def bert_qat():
    """A fitted QAT tiny BERT and its data."""
    keras.utils.set_random_seed(0)
    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    qat = fit(quantize_model(model), x, y, steps=2)
    return qat, x


def test_keras_hub_bert_weights_checkpoint_round_trip(bert_qat):
    qat, x = bert_qat
    path = os.path.join(tempfile.mkdtemp(), "qat.weights.h5")
    qat.save_weights(path)
    fresh = quantize_model(tiny_bert_classifier())
    assert not np.allclose(outputs(fresh, x), outputs(qat, x), atol=1e-6)
    fresh.load_weights(path)
    np.testing.assert_allclose(outputs(fresh, x), outputs(qat, x), atol=1e-6)
    assert used_ranges(fresh) == used_ranges(qat)


def test_keras_hub_bert_keras_file_round_trip(bert_qat):
    # A keras-hub config rebuilds plain layers: the file also says where each wrapper sits.
    qat, x = bert_qat
    path, config = keras_config(qat)
    assert config["registered_name"] == "kcompress>LayersSwappedInPlace"
    # Each encoder block is swapped for a QuantizeTransformerEncoder that saves its own wrappers.
    assert len(saved_wrappers(config)) == len(quantization_wrappers(qat)) + 2
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, keras_hub.models.BertTextClassifier)
    assert type(loaded).__name__ == "BertTextClassifier"
    assert [type(w) for w in quantization_wrappers(loaded)] == [type(w) for w in quantization_wrappers(qat)]
    assert used_ranges(loaded) == used_ranges(qat)
    np.testing.assert_allclose(outputs(loaded, x), outputs(qat, x), atol=1e-6)
    # It trains on: the ranges it loaded move.
    y = np.arange(len(x["token_ids"])) % 2
    fit(loaded, x, y, steps=1, learning_rate=1e-2)
    assert used_ranges(loaded) != used_ranges(qat)
    # Stripped, it is a plain keras-hub model again: the file needs no kcompress.
    _, stripped_config = keras_config(strip_quantization(loaded))
    assert "kcompress" not in json.dumps(stripped_config)


def saved_wrappers(config):
    """Class names of the swapped-in layers a saved config lists, nested ones included."""
    names = []
    if isinstance(config, dict):
        for entry in config.get("swapped", []):
            names.append(entry["layer"]["class_name"])
        for value in config.values():
            names += saved_wrappers(value)
    elif isinstance(config, list):
        for value in config:
            names += saved_wrappers(value)
    return names


def keras_config(model):
    path = os.path.join(tempfile.mkdtemp(), "stripped.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return path, json.loads(archive.read("config.json"))


@pytest.mark.parametrize("make", [wide_mlp, functional_cnn], ids=["sequential", "functional_cnn"])
def test_strip_gives_plain_keras_with_int8_kernels(make):
    model = make()
    x, y = data_for(model, n=16)
    qat = fit(quantize_model(model), x, y, steps=2)
    stripped = strip_quantization(qat)

    assert type(stripped) is type(model)
    assert not quantization_wrappers(stripped)
    assert [type(layer) for layer in stripped.layers] == [type(layer) for layer in model.layers]
    quantized = {w.layer.name for w in quantization_wrappers(qat) if isinstance(w, QuantizeKernel)}
    layers = [layer for layer in kernel_layers(stripped) if layer.name in quantized]
    assert len(layers) == len(quantized) >= 2
    for layer in layers:
        assert_on_int_grid(layer)
    # The QAT model is left as it was.
    assert quantization_wrappers(qat)

    path, config = keras_config(stripped)
    assert "kcompress" not in json.dumps(config)
    loaded = keras.models.load_model(path)  # No custom objects needed.
    np.testing.assert_allclose(outputs(loaded, x), outputs(stripped, x), atol=1e-6)


def test_strip_keras_hub_bert(bert_qat):
    qat, x = bert_qat
    stripped = strip_quantization(qat)
    assert type(stripped).__name__ == "BertTextClassifier"
    assert not quantization_wrappers(stripped)
    layers = kernel_layers(stripped)
    assert len(layers) == 14  # 4 projections + 2 FFN per layer, pooled_dense, logits.
    for layer in layers:
        assert_on_int_grid(layer)
    # Embedding tables are on a per-tensor 256-level grid.
    for name in ("token_embedding", "segment_embedding"):
        table = np.asarray(stripped.backbone.get_layer(name).embeddings)
        assert len(np.unique(table)) <= 256
    path, config = keras_config(stripped)
    assert "kcompress" not in json.dumps(config)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(outputs(loaded, x), outputs(stripped, x), atol=1e-6)


def test_strip_functional_attention():
    stripped = strip_quantization(quantize_model(functional_attention()))
    assert not quantization_wrappers(stripped)


def test_strip_of_a_float_model_is_a_copy():
    model = mlp()
    copy = strip_quantization(model)
    assert copy is not model
    x, _ = data_for(model, n=4)
    np.testing.assert_array_equal(outputs(copy, x), outputs(model, x))
    with pytest.raises(ValueError, match=r"Expected a keras\.Model"):
        strip_quantization(keras.layers.Dense(2))
