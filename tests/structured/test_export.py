"""The shrunk model: config round trips, `.keras` save/load, TFLite export, QAT."""

import os
import tempfile

import numpy as np
import pytest

import tflite_export
from kcompress import quantization, structured
from kcompress.structured import PrunedBertBackbone, PrunedTransformerEncoder
from tests.helpers import run_serialization_test, save_and_load
from tests.structured.shelpers import SEQ, inputs, logits, tiny_classifier

SHAPES = {name: (SEQ,) for name in ("token_ids", "segment_ids", "padding_mask")}


@pytest.fixture
def small():
    return structured.prune_transformer(tiny_classifier(), heads=[3, 1], ffn=[7, 20], importance="magnitude")


def test_encoder_config_round_trip():
    layer = PrunedTransformerEncoder(intermediate_dim=5, num_heads=3, key_dim=4, activation="gelu", name="enc")
    restored = run_serialization_test(layer)
    assert restored.key_dim == 4 and restored.num_heads == 3
    restored.build((1, 6, 16))
    assert tuple(restored._self_attention_layer._output_dense.kernel.shape) == (3, 4, 16)


def test_backbone_config_round_trip(small):
    restored = run_serialization_test(small.backbone)
    assert isinstance(restored, PrunedBertBackbone)
    assert restored.num_heads == [3, 1] and restored.intermediate_dim == [7, 20] and restored.key_dim == 4
    assert restored.count_params() == small.backbone.count_params()


def test_save_and_load_round_trip(small):
    x, _ = inputs()
    loaded = save_and_load(small)
    assert type(loaded) is type(small)
    assert isinstance(loaded.backbone, PrunedBertBackbone)
    assert loaded.backbone.num_heads == [3, 1] and loaded.backbone.intermediate_dim == [7, 20]
    np.testing.assert_allclose(logits(loaded, x), logits(small, x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode, atol", [("float32", 1e-4), ("dynamic", 0.5)])
def test_tflite_export(small, mode, atol):
    x, _ = inputs(16)
    path = os.path.join(tempfile.mkdtemp(), f"{mode}.tflite")
    result = tflite_export.convert(small, path, mode=mode, input_shapes=SHAPES)
    assert result.size_bytes > 0
    report = tflite_export.verify(small, path, x)
    assert report.examples == 16 and report.max_abs_diff < atol
    if mode == "float32":
        assert report.agreement == 1.0


def test_tflite_of_shrunk_model_is_smaller():
    model = tiny_classifier(hidden_dim=32, intermediate_dim=128)
    small = structured.prune_transformer(model, heads=0.5, ffn=0.5, importance="magnitude")
    folder = tempfile.mkdtemp()
    sizes = [
        tflite_export.convert(m, os.path.join(folder, f"{i}.tflite"), input_shapes=SHAPES).size_bytes
        for i, m in enumerate((model, small))
    ]
    assert sizes[1] < 0.8 * sizes[0]


def test_quantization_aware_training_wraps_and_runs(small):
    x, _ = inputs(32)
    qat = quantization.quantize_model(small)
    wrapped = [type(w).__name__ for w in quantization.quantization_wrappers(qat)]
    assert wrapped.count("QuantizeAttention") == 2
    assert wrapped.count("QuantizeKernel") >= 4 + 2  # two FFN denses per layer, pooler and logits
    for training in (True, False):
        out = np.asarray(qat(x, training=training))
        assert out.shape == (32, 2) and np.all(np.isfinite(out))
    # Fake quantization stays close to the float model it wraps.
    assert np.abs(out - logits(small, x)).max() < 0.5
