"""Cluster-preserving QAT: a clustered model keeps its clusters through quantization-aware training."""

import numpy as np
import pytest

from kcompress import clustering
from kcompress.quantization import (
    QuantizationConfig,
    QuantizeKernel,
    quantization_wrappers,
    quantize_model,
    strip_quantization,
)
from tests.clustering.chelpers import fit, named_mlp
from tests.helpers import data_for, save_and_load
from tests.quantization.qhelpers import kernel_channels
from tflite_export import _runner
from tflite_export.convert import convert

K = 6
PRESERVE = QuantizationConfig(preserve_clusters=True)


@pytest.fixture(scope="module")
def clustered_mlp():
    """A clustered (K values per kernel), fine-tuned and stripped MLP, and its data."""
    model = named_mlp()
    x, y = data_for(model, n=32)
    return clustering.strip_clustering(fit(clustering.cluster_weights(model, K), x, y, steps=2)), x, y


def kernel_wrappers(model):
    return [w for w in quantization_wrappers(model) if isinstance(w, QuantizeKernel)]


def test_config_field_defaults_off_and_serializes():
    assert QuantizationConfig().preserve_clusters is False
    assert QuantizationConfig.from_config(PRESERVE.get_config()) == PRESERVE
    with pytest.raises(ValueError, match="Expected preserve_clusters to be a bool. Received: preserve_clusters=1"):
        QuantizationConfig(preserve_clusters=1)


def test_qat_keeps_at_most_k_values(clustered_mlp):
    model, x, y = clustered_mlp
    qat = quantize_model(model, config=PRESERVE)
    assert [w.tied_clusters for w in kernel_wrappers(qat)] == [K, K, K]
    fit(qat, x, y, steps=4, learning_rate=0.05, run_eagerly=False)
    for wrapper in kernel_wrappers(qat):
        # The float kernel moved, but as K tied groups...
        assert len(np.unique(wrapper.layer.kernel.numpy())) <= K
    stripped = strip_quantization(qat)
    for layer in stripped.layers:
        # ...and once on the int8 grid, each output channel has at most K levels.
        channels = kernel_channels(layer)
        assert max(len(np.unique(channels[:, c])) for c in range(channels.shape[1])) <= K, layer.name


def test_without_preserve_clusters_qat_unties_them(clustered_mlp):
    model, x, y = clustered_mlp
    qat = quantize_model(model)
    assert [w.tied_clusters for w in kernel_wrappers(qat)] == [0, 0, 0]
    fit(qat, x, y, steps=4, learning_rate=0.05)
    assert max(len(np.unique(w.layer.kernel.numpy())) for w in kernel_wrappers(qat)) > K


def test_unclustered_kernels_are_left_alone():
    model = named_mlp(input_dim=40, hidden=16)  # 640 distinct values: more than 256, not a clustered kernel.
    qat = quantize_model(model, config=PRESERVE)
    assert kernel_wrappers(qat)[0].tied_clusters == 0


def test_ties_survive_a_keras_file_round_trip(clustered_mlp):
    model, x, y = clustered_mlp
    loaded = save_and_load(quantize_model(model, config=PRESERVE))
    assert [w.tied_clusters for w in kernel_wrappers(loaded)] == [K, K, K]
    fit(loaded, x, y, steps=3, learning_rate=0.05)
    assert all(len(np.unique(w.layer.kernel.numpy())) <= K for w in kernel_wrappers(loaded))


def test_int8_tflite_keeps_at_most_k_levels_per_channel(clustered_mlp, tmp_path):
    model, x, y = clustered_mlp
    qat = fit(quantize_model(model, config=PRESERVE), x, y, steps=3, learning_rate=0.05)
    conversion = convert(qat, tmp_path / "clustered_int8.tflite", mode="int8")
    assert conversion.model.is_full_integer()
    interpreter = _runner.make_interpreter(_runner.read_model(conversion.path), delegates=False)
    interpreter.allocate_tensors()
    weights = [
        d
        for d in interpreter.get_tensor_details()
        if d["dtype"] == np.int8 and len(d["quantization_parameters"]["scales"]) > 1 and len(d["shape"]) == 2
    ]
    assert len(weights) == 3
    for detail in weights:
        values = interpreter.get_tensor(detail["index"])
        axis = detail["quantization_parameters"]["quantized_dimension"]
        levels = [len(np.unique(np.take(values, c, axis=axis))) for c in range(values.shape[axis])]
        assert max(levels) <= K, (detail["name"], levels)


def test_pruned_clustered_qat_keeps_zeros_and_clusters():
    model = named_mlp()
    for layer in model.layers:
        kernel = layer.kernel.numpy()
        layer.kernel.assign(np.where(np.abs(kernel) < np.median(np.abs(kernel)), 0.0, kernel))
    x, y = data_for(model, n=32)
    stripped = clustering.strip_clustering(fit(clustering.cluster_weights(model, K), x, y, steps=2))
    zeros = [layer.kernel.numpy() == 0 for layer in stripped.layers]
    qat = fit(quantize_model(stripped, config=PRESERVE), x, y, steps=3, learning_rate=0.5)
    assert all(w.keep_zeros and w.tied_clusters == K for w in kernel_wrappers(qat))
    for layer, zero in zip(strip_quantization(qat).layers, zeros):
        kernel = layer.kernel.numpy()
        assert (kernel[zero] == 0).all()
        assert max(len(np.unique(kernel[:, c])) for c in range(kernel.shape[1])) <= K


def test_bert_attention_projections_stay_clustered_through_qat():
    from kcompress.quantization import QuantizeAttention
    from tests.helpers import tiny_bert_classifier

    model = tiny_bert_classifier()
    x, y = data_for(model, n=16)
    clustered = clustering.cluster_transformer(model, K)
    qat = quantize_model(clustered, config=PRESERVE)
    attention = [w for w in quantization_wrappers(qat) if isinstance(w, QuantizeAttention)]
    assert attention and all(
        set(w.tied_clusters) == {"_query_dense", "_key_dense", "_value_dense", "_output_dense"} for w in attention
    )
    fit(qat, x, y, steps=3, learning_rate=0.05, run_eagerly=False)
    for wrapper in attention:
        for name in wrapper.tied_clusters:
            assert len(np.unique(getattr(wrapper.layer, name).kernel.numpy())) <= K, name
    restored = QuantizeAttention.from_config(attention[0].get_config())
    assert restored.tied_clusters == attention[0].tied_clusters
