import keras
import numpy as np
import pytest

from kcompress import pruning
from kcompress.quantization import (
    QuantizationConfig,
    QuantizeAttention,
    QuantizeSeparableConv,
    quantization_wrappers,
    quantize_model,
    strip_quantization,
)
from tests.helpers import data_for, functional_attention, mlp, save_and_load
from tests.quantization.qhelpers import fit, separable_cnn


def pruned_and_stripped(model, x, y, sparsity=0.5):
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=pruning.ConstantSparsity(sparsity, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    pruned.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=2, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    return pruning.strip_pruning(pruned)


@pytest.fixture(scope="module")
def sparse_mlp():
    """A 50%-pruned, stripped MLP and its data (quantize_model copies it: tests share it)."""
    keras.utils.set_random_seed(0)
    model = mlp()
    x, y = data_for(model, n=32)
    return pruned_and_stripped(model, x, y), x, y


@pytest.fixture(scope="module")
def sparse_attention():
    keras.utils.set_random_seed(0)
    model = functional_attention()
    x, y = data_for(model, n=32)
    return pruned_and_stripped(model, x, y), x, y


def kernels(model):
    return {layer.name: np.asarray(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")}


def assert_zeros_kept(before, after):
    assert before.keys() == after.keys()
    for name, kernel in before.items():
        zeros = kernel == 0
        assert zeros.sum() == round(kernel.size * 0.5), name
        assert (after[name][zeros] == 0).all(), name
        assert (after[name] == 0).sum() >= zeros.sum(), name


def test_qat_keeps_pruned_zeros_under_a_large_learning_rate(sparse_mlp):
    sparse, x, y = sparse_mlp
    before = kernels(sparse)

    qat = quantize_model(sparse)
    assert all(w.keep_zeros for w in quantization_wrappers(qat))
    fit(qat, x, y, steps=3, learning_rate=1.0)
    after = kernels(strip_quantization(qat))
    assert_zeros_kept(before, after)
    # The large steps did move the surviving weights.
    assert any(not np.allclose(after[n][before[n] != 0], before[n][before[n] != 0], atol=1e-2) for n in before)


def test_qat_keeps_zeros_after_a_keras_file_round_trip(sparse_mlp):
    sparse, x, y = sparse_mlp
    before = kernels(sparse)
    loaded = save_and_load(fit(quantize_model(sparse), x, y, steps=1))
    assert all(w.keep_zeros for w in quantization_wrappers(loaded))
    fit(loaded, x, y, steps=3, learning_rate=1.0)
    assert_zeros_kept(before, kernels(strip_quantization(loaded)))


def test_preserve_sparsity_false_lets_zeros_move(sparse_mlp):
    sparse, x, y = sparse_mlp
    before = kernels(sparse)
    qat = quantize_model(sparse, config=QuantizationConfig(preserve_sparsity=False))
    assert not any(w.keep_zeros for w in quantization_wrappers(qat))
    fit(qat, x, y, steps=3, learning_rate=1.0)
    after = kernels(strip_quantization(qat))
    assert sum((after[n][before[n] == 0] != 0).sum() for n in before) > 0


def attention_projection_zeros(model):
    """Zeros of the fake-quantized projection kernels the attention wrapper runs with."""
    attention = [w for w in quantization_wrappers(model) if isinstance(w, QuantizeAttention)]
    return {
        variable.path.split("/")[-2]: int((np.asarray(value) == 0).sum())
        for w in attention
        for variable, value in w.quantized_weights()
    }


def test_qat_keeps_attention_projection_zeros(sparse_attention):
    sparse, x, y = sparse_attention
    qat = quantize_model(sparse)
    pruned = attention_projection_zeros(qat)
    assert len(pruned) == 4 and all(n == 128 for n in pruned.values())
    fit(qat, x, y, steps=3, learning_rate=1.0)
    assert all(attention_projection_zeros(qat)[name] >= n for name, n in pruned.items())


def test_pruned_attention_qat_keras_file_round_trip(sparse_attention):
    sparse, _, _ = sparse_attention
    qat = quantize_model(sparse)
    loaded = save_and_load(qat)
    assert attention_projection_zeros(loaded) == attention_projection_zeros(qat)


def separable_kernels(model):
    return {
        f"{layer.name}/{name}": np.asarray(getattr(layer, name))
        for layer in model.layers
        if isinstance(layer, keras.layers.SeparableConv2D)
        for name in QuantizeSeparableConv.KERNELS
    }


def test_qat_keeps_pruned_separable_conv_zeros():
    model = separable_cnn()
    x, y = data_for(model, n=32)
    sparse = pruned_and_stripped(model, x, y)
    before = separable_kernels(sparse)
    assert len(before) == 4 and all((k == 0).any() for k in before.values())
    qat = quantize_model(sparse)
    separable = [w for w in quantization_wrappers(qat) if isinstance(w, QuantizeSeparableConv)]
    assert [w.keep_zeros for w in separable] == [list(QuantizeSeparableConv.KERNELS)] * 2
    loaded = save_and_load(fit(qat, x, y, steps=1))
    fit(loaded, x, y, steps=3, learning_rate=1.0)
    after = separable_kernels(strip_quantization(loaded))
    for name, kernel in before.items():
        assert (after[name][kernel == 0] == 0).all(), name


def test_qat_keeps_separable_conv_clusters():
    from kcompress import clustering

    model = separable_cnn()
    x, y = data_for(model, n=32)
    clustered = clustering.cluster_weights(model, 6)
    fit(clustered, x, y, steps=1)
    stripped = clustering.strip_clustering(clustered)
    assert all(len(np.unique(k)) <= 6 for k in separable_kernels(stripped).values())
    qat = quantize_model(stripped, config=QuantizationConfig(preserve_clusters=True))
    separable = [w for w in quantization_wrappers(qat) if isinstance(w, QuantizeSeparableConv)]
    assert len(separable) == 2 and all(set(w.tied_clusters) == set(QuantizeSeparableConv.KERNELS) for w in separable)
    loaded = save_and_load(qat)
    fit(loaded, x, y, steps=3, learning_rate=0.05)
    # The float kernels moved, but as tied groups...
    moved = {n: np.asarray(k) for w in quantization_wrappers(loaded) for n, k in separable_kernels_of(w).items()}
    assert len(moved) == 4 and all(len(np.unique(k)) <= 6 for k in moved.values())
    assert any(not np.array_equal(moved[n], k) for n, k in separable_kernels(stripped).items())
    # ...and once on the int8 grid, each channel has at most 6 levels.
    for name, kernel in separable_kernels(strip_quantization(loaded)).items():
        channels = kernel.reshape(-1, kernel.shape[-1] * (kernel.shape[-2] if "depthwise" in name else 1))
        assert max(len(np.unique(channels[:, c])) for c in range(channels.shape[1])) <= 6, name


def separable_kernels_of(wrapper):
    if not isinstance(wrapper, QuantizeSeparableConv):
        return {}
    return {f"{wrapper.layer.name}/{n}": getattr(wrapper.layer, n).numpy() for n in QuantizeSeparableConv.KERNELS}
