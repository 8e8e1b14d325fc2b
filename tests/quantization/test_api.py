import keras
import numpy as np
import pytest

from kcompress.quantization import (
    QuantizationConfig,
    QuantizeAttention,
    QuantizeKernel,
    QuantizeSeparableConv,
    calibrate,
    fake_quant,
    quantization_wrappers,
    quantize_model,
    strip_quantization,
)
from tests.helpers import (
    SubclassedMLP,
    data_for,
    functional_attention,
    functional_cnn,
    is_same_kind,
    mlp,
    save_and_load,
    subclassed_mlp,
    tiny_bert_classifier,
)
from tests.quantization.qhelpers import assert_on_int_grid, fit, kernel_channels, named_mlp, outputs


def wrapped(model):
    """``{wrapped layer name: wrapper class name}`` (names repeat across BERT layers: counted)."""
    counts = {}
    for wrapper in quantization_wrappers(model):
        key = (type(wrapper).__name__, wrapper.layer.name)
        counts[key] = counts.get(key, 0) + 1
    return counts


EXPECTED = {
    "sequential": (mlp, {("QuantizeKernel", "dense"): 1, ("QuantizeKernel", "dense_1"): 1}),
    "functional_cnn": (
        functional_cnn,
        {
            ("QuantizeKernel", "conv2d"): 1,
            ("QuantizeKernel", "depthwise_conv2d"): 1,
            ("QuantizeSeparableConv", "separable_conv2d"): 1,
            ("QuantizeOutput", "global_average_pooling2d"): 1,
            ("QuantizeKernel", "dense"): 1,
        },
    ),
    # The attention wrapper quantizes its four projection kernels itself.
    "functional_attention": (
        functional_attention,
        {
            ("QuantizeAttention", "multi_head_attention"): 1,
            ("QuantizeOutput", "global_average_pooling1d"): 1,
            ("QuantizeKernel", "dense"): 1,
        },
    ),
    # The copy of a subclassed model re-runs __init__: its Dense layers get new automatic names.
    "subclassed": (subclassed_mlp, {("QuantizeKernel", "dense_2"): 1, ("QuantizeKernel", "dense_3"): 1}),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_quantize_wraps_fits_and_leaves_the_input_model_alone(kind):
    make, expected = EXPECTED[kind]
    model = make()
    before = [w.copy() for w in model.get_weights()]
    x, y = data_for(model, n=16)
    reference = outputs(model, x)

    qat = quantize_model(model)
    assert is_same_kind(qat, model)
    assert wrapped(qat) == expected
    assert not quantization_wrappers(model)
    fit(qat, x, y, steps=2, run_eagerly=False)  # Graph mode: the wrappers trace in a train step.
    assert int(qat.optimizer.iterations.numpy()) == 2
    assert np.isfinite(outputs(qat, x)).all()

    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(outputs(model, x), reference)


def test_subclassed_model_keeps_its_attributes():
    qat = quantize_model(subclassed_mlp())
    assert isinstance(qat, SubclassedMLP)
    assert isinstance(qat.dense_in, QuantizeKernel) and isinstance(qat.dense_out, QuantizeKernel)
    assert qat.dense_in.layer.activation is keras.activations.relu


@pytest.fixture(scope="module")
def bert():
    """A tiny keras-hub BERT, its QAT copy fitted 2 steps (eagerly: tracing costs ~8 s), and data."""
    keras.utils.set_random_seed(0)
    model = tiny_bert_classifier()
    before = [w.copy() for w in model.get_weights()]
    x, y = data_for(model, n=16)
    qat = fit(quantize_model(model), x, y, steps=2)
    return model, before, qat, x, y


def test_keras_hub_bert_gets_every_wrapper(bert):
    model, before, qat, x, _ = bert
    assert type(qat).__name__ == "BertTextClassifier"
    counts = wrapped(qat)  # Names inside the encoder layers appear once per layer.
    # The attention wrapper quantizes its four projection kernels itself (no nested wrappers).
    assert counts[("QuantizeAttention", "self_attention_layer")] == 2
    for projection in ("query", "key", "value", "attention_output"):
        assert ("QuantizeKernel", projection) not in counts
    assert counts[("QuantizeKernel", "feedforward_intermediate_dense")] == 2
    assert counts[("QuantizeKernel", "feedforward_output_dense")] == 2
    assert counts[("QuantizeLayerNorm", "self_attention_layer_norm")] == 2
    assert counts[("QuantizeLayerNorm", "feedforward_layer_norm")] == 2
    assert counts[("QuantizeLayerNorm", "embeddings_layer_norm")] == 1
    assert counts[("QuantizeEmbedding", "token_embedding")] == 1
    assert counts[("QuantizeEmbedding", "segment_embedding")] == 1
    assert counts[("QuantizeOutput", "embeddings_add")] == 1
    assert counts[("QuantizeOutput", "position_embedding")] == 1
    assert counts[("QuantizeKernel", "pooled_dense")] == 1
    assert counts[("QuantizeKernel", "logits")] == 1
    assert sum(counts.values()) == 17
    attention = [w for w in quantization_wrappers(qat) if isinstance(w, QuantizeAttention)][0]
    assert {v.path.split("/")[-2] for v, _ in attention.quantized_weights()} == {
        "query",
        "key",
        "value",
        "attention_output",
    }
    # One attention wrapper per encoder layer, inside the backbone.
    for i in range(2):
        layer = qat.backbone.get_layer(f"quant_transformer_layer_{i}").layer  # A QuantizeTransformerEncoder.
        assert isinstance(layer._self_attention_layer, QuantizeAttention)
    position = [w for w in quantization_wrappers(qat) if w.layer.name == "position_embedding"][0]
    assert position.constant
    # Fitting trained the QAT copy only.
    assert int(qat.optimizer.iterations.numpy()) == 2
    logits = [w for w in quantization_wrappers(qat) if w.layer.name == "logits"][0].layer
    assert not np.array_equal(np.asarray(logits.kernel), np.asarray(model.get_layer("logits").kernel))
    assert np.isfinite(outputs(qat, x)).all()
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("kind", [*sorted(EXPECTED), "keras_hub_bert"])
def test_calibrated_outputs_are_close_to_the_float_model(kind):
    make = EXPECTED[kind][0] if kind in EXPECTED else tiny_bert_classifier
    model = make()
    x, _ = data_for(model, n=32)
    reference = outputs(model, x)
    qat = quantize_model(model)
    assert calibrate(qat, x) == 1
    scale = np.abs(reference).max()
    # Loose: 8-bit weights and activations, a few layers deep.
    np.testing.assert_allclose(outputs(qat, x), reference, atol=0.1 * scale)


def test_leaving_chosen_activations_float():
    from kcompress.quantization.quantizers import leaving_float

    model = mlp()
    x, _ = data_for(model, n=32)
    qat = quantize_model(model)
    calibrate(qat, x)
    int8 = outputs(qat, x)
    with leaving_float(lambda q: True):
        weights_only = outputs(qat, x)
    last = qat.layers[-1].quantizers["output"]
    with leaving_float(lambda q: q is last):
        last_float = outputs(qat, x)
    np.testing.assert_array_equal(outputs(qat, x), int8)
    reference = outputs(model, x)
    # With float activations only the int8 weights are left: closer to the float model.
    assert np.abs(weights_only - reference).mean() < np.abs(int8 - reference).mean()
    # Only the last layer's output leaves its grid: at most half a step from the int8 output.
    step = fake_quant.grid_step(*last.current_range())
    assert not np.array_equal(last_float, int8)
    assert np.abs(last_float - int8).max() <= 0.5 * float(step) + 1e-6
    with leaving_float(lambda q: True):
        # Calibrating calls inside the context still move the ranges.
        before = float(last.range_max.numpy())
        calibrate(qat, x * 4.0)
        assert float(last.range_max.numpy()) > before


def test_calibrate_reads_datasets_and_steps_then_freezes_ranges():
    import tensorflow as tf

    qat = quantize_model(mlp())
    x, y = data_for(qat, n=32)
    assert calibrate(qat, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), steps=2) == 2
    first = qat.layers[0].quantizers["input"]
    low, high = float(first.range_min.numpy()), float(first.range_max.numpy())
    assert low < 0 < high
    # Inference outside calibrate does not move the ranges.
    qat(x * 10.0, training=False)
    assert (float(first.range_min.numpy()), float(first.range_max.numpy())) == (low, high)
    assert calibrate(qat, tf.data.Dataset.from_tensor_slices(x).batch(8)) == 4


def test_layer_configs_none_leaves_a_layer_float():
    qat = quantize_model(named_mlp(), layer_configs={"he*": None})
    assert isinstance(qat.layers[0], QuantizeKernel)
    assert type(qat.layers[1]) is keras.layers.Dense and qat.layers[1].name == "head"


def test_layer_configs_apply_to_auto_named_layers_of_a_subclassed_model():
    # Patterns match the input model's names, though the copy renames auto-named layers (dense -> dense_2).
    model = subclassed_mlp()
    assert (model.dense_in.name, model.dense_out.name) == ("dense", "dense_1")
    qat = quantize_model(model, layer_configs={"dense": None, "dense_1": {"weight_bits": 4}})
    assert type(qat.dense_in) is keras.layers.Dense
    assert isinstance(qat.dense_out, QuantizeKernel) and qat.dense_out.config.weight_bits == 4
    assert [type(w) for w in quantization_wrappers(qat)] == [QuantizeKernel]


def test_separable_conv_kernels_are_on_per_channel_grids():
    inputs = keras.Input((6, 6, 3))
    outputs_ = keras.layers.SeparableConv2D(5, 3, depth_multiplier=2, activation="gelu")(inputs)
    model = keras.Model(inputs, outputs_)
    qat = quantize_model(model, config=QuantizationConfig(weight_bits=4))
    (wrapper,) = quantization_wrappers(qat)
    assert isinstance(wrapper, QuantizeSeparableConv)
    assert sorted(wrapper.quantizers) == ["depthwise", "input", "output", "pre_activation"]
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype("float32")
    fit(qat, x, np.zeros((4, 4, 4), "int32"), steps=1, batch_size=4)
    layer = strip_quantization(qat).layers[-1]
    assert type(layer) is keras.layers.SeparableConv2D
    # Depthwise: one scale per input channel x multiplier (3 x 2); pointwise: one per filter.
    for kernel, channels in ((layer.depthwise_kernel, 6), (layer.pointwise_kernel, 5)):
        columns = np.asarray(kernel).reshape(-1, channels).astype(np.float64)
        ratio = columns * 7 / np.abs(columns).max(axis=0)
        np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-3)
    np.testing.assert_allclose(outputs(qat, x), outputs(strip_quantization(qat), x), atol=0.1)


def view_model(view):
    inputs = keras.Input((4, 6))
    x = keras.layers.Dense(6, name="first")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="second")(view(x)))


@pytest.mark.parametrize(
    "view",
    [
        lambda x: x[:, 0, :],
        keras.layers.Flatten(),
        lambda x: keras.ops.reshape(keras.ops.transpose(x, (0, 2, 1)), (-1, 24)),
    ],
    ids=["get_item", "flatten", "transpose_reshape"],
)
def test_kernel_reading_a_view_of_a_quantized_tensor_keeps_its_range(view):
    qat = quantize_model(view_model(view))
    first, second = quantization_wrappers(qat)
    assert first.quantize_input and not second.quantize_input
    x = np.random.default_rng(0).normal(size=(8, 4, 6)).astype("float32")
    calibrate(qat, x)
    assert float(second.quantizers["input"].initialized.numpy()) == 0.0  # Never used.
    loaded = save_and_load(qat)
    assert not quantization_wrappers(loaded)[1].quantize_input
    np.testing.assert_allclose(outputs(loaded, x), outputs(qat, x), atol=1e-6)
    assert [type(layer).__name__ for layer in strip_quantization(qat).layers if layer.weights] == ["Dense", "Dense"]


def test_kernel_reading_a_view_of_a_float_tensor_quantizes_it():
    inputs = keras.Input((4, 6))
    x = keras.layers.Dropout(0.1)(inputs)  # Not a quantized layer: its output carries no range.
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    (wrapper,) = quantization_wrappers(quantize_model(model))
    assert wrapper.quantize_input


def test_layer_configs_first_matching_pattern_wins():
    qat = quantize_model(named_mlp(), layer_configs={"hid*": {"weight_bits": 3}, "h*": None})
    assert isinstance(qat.layers[0], QuantizeKernel) and qat.layers[0].config.weight_bits == 3
    assert type(qat.layers[1]) is keras.layers.Dense


def test_layer_configs_four_bit_layer():
    model = named_mlp(input_dim=64)
    config = QuantizationConfig(weight_bits=4)
    qat = quantize_model(model, layer_configs={"hidden": config})
    assert qat.layers[0].config == config and qat.layers[1].config == QuantizationConfig()
    x, y = data_for(model, n=16)
    fit(qat, x, y, steps=2)
    stripped = strip_quantization(qat)
    hidden, head = stripped.layers
    assert type(hidden) is keras.layers.Dense
    channels = kernel_channels(hidden)
    assert max(len(np.unique(channels[:, c])) for c in range(channels.shape[1])) <= 15
    assert_on_int_grid(hidden, bits=4)
    assert_on_int_grid(head, bits=8)


def test_whole_model_config_applies_to_every_wrapper():
    config = QuantizationConfig(weight_bits=6, per_channel=False)
    qat = quantize_model(functional_cnn(), config=config)
    assert all(w.config == config for w in quantization_wrappers(qat))


def test_int16_activations_train():
    qat = quantize_model(mlp(), config=QuantizationConfig(activation_bits=16))
    x, y = data_for(qat, n=16)
    fit(qat, x, y, steps=2)
    assert np.isfinite(outputs(qat, x)).all()


def test_error_not_a_model():
    with pytest.raises(ValueError, match=r"Expected a keras\.Model\. Received: model=<Dense"):
        quantize_model(keras.layers.Dense(2))


def test_error_unbuilt_model():
    with pytest.raises(ValueError, match=r"Expected a built model \(call it on data or give it an Input\)"):
        quantize_model(keras.Sequential([keras.layers.Dense(2)]))


def test_error_already_quantized():
    qat = quantize_model(mlp())
    with pytest.raises(ValueError, match=r"Expected a model not already quantized \(strip_quantization it first\)"):
        quantize_model(qat)


def test_error_pattern_matching_nothing():
    with pytest.raises(ValueError, match=r"Expected layer_configs patterns that match layers of .* pattern='nope\*'"):
        quantize_model(named_mlp(), layer_configs={"hidden": None, "nope*": None})


def test_error_layer_configs_types():
    with pytest.raises(ValueError, match=r"Expected layer_configs to be a dict"):
        quantize_model(named_mlp(), layer_configs=[("hidden", None)])
    with pytest.raises(ValueError, match=r"Expected layer name patterns \(str\) as layer_configs keys"):
        quantize_model(named_mlp(), layer_configs={keras.layers.Dense: None})
    with pytest.raises(ValueError, match=r"Expected weight_bits in \[2, 8\]"):
        quantize_model(named_mlp(), layer_configs={"hidden": {"weight_bits": 12}})


def test_error_nothing_to_quantize():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.1)])
    with pytest.raises(ValueError, match=r"Expected a model with at least one layer kcompress can quantize \(Dense,"):
        quantize_model(model)
    with pytest.raises(ValueError, match=r"Expected a model with at least one layer kcompress can quantize"):
        quantize_model(named_mlp(), layer_configs={"*": None})


def test_error_python_lambda_layer_cannot_be_copied():
    inputs = keras.Input((4,))
    hidden = keras.layers.Lambda(lambda t: keras.ops.cumsum(t, axis=-1))(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    with pytest.raises(ValueError, match=r"Expected a model whose layers can be copied from their config"):
        quantize_model(model)


def test_error_calibrate_on_a_float_model():
    with pytest.raises(ValueError, match=r"Expected a model returned by quantize_model\. Received: model="):
        calibrate(mlp(), np.ones((4, 16), "float32"))


def test_error_calibrate_steps():
    qat = quantize_model(mlp())
    with pytest.raises(ValueError, match=r"Expected steps to be None or an integer >= 1\. Received: steps=0"):
        calibrate(qat, np.ones((4, 16), "float32"), steps=0)
