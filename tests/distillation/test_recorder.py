import keras
import numpy as np
import pytest
import tensorflow as tf

from kcompress import quantization
from kcompress.distillation import FeatureRecorder
from tests.distillation.conftest import bert, tokens


def test_keras_hub_hidden_states_and_attention():
    model = bert(layers=3, width=16, heads=4)
    recorder = FeatureRecorder(model)
    assert recorder.depth == 3 and recorder.hidden_width(0) == 16 and recorder.embedding_width() == 16
    x = tokens(4)
    with recorder.recording() as record:
        model(x)
    backbone_output = model.backbone(x)["sequence_output"]
    np.testing.assert_allclose(np.asarray(record.hidden[2]), np.asarray(backbone_output), atol=1e-6)
    assert tuple(record.embedding.shape) == (4, 8, 16)
    probabilities = np.asarray(record.attention[1])
    assert probabilities.shape == (4, 4, 8, 8)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    # Padded keys get no attention.
    masked = x["padding_mask"][:, None, None, :] == 0
    assert np.all(np.broadcast_to(masked, probabilities.shape) <= (probabilities < 1e-6))


def test_model_is_untouched_outside_recording():
    model = bert()
    recorder = FeatureRecorder(model)
    with recorder.recording():
        assert "call" in vars(model.backbone.transformer_layers[0])
    for block in model.backbone.transformer_layers:
        assert "call" not in vars(block)
        assert "_compute_attention" not in vars(block._self_attention_layer)


def test_recording_inside_tf_function():
    model = bert()
    recorder = FeatureRecorder(model)

    @tf.function
    def forward(x):
        with recorder.recording() as record:
            model(x)
        return record.attention[0]

    assert tuple(forward(tokens(2)).shape) == (2, 2, 8, 8)


def test_plain_functional_transformer_blocks_and_names():
    inputs = keras.Input((6, 8))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention_a")(inputs, inputs)
    x = keras.layers.Dense(8, name="mix")(x)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention_b")(x, x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))
    recorder = FeatureRecorder(model)
    assert [block.name for block in recorder.blocks] == ["attention_a", "attention_b"]
    with recorder.recording() as record:
        model(np.zeros((1, 6, 8), "float32"))
    assert tuple(record.attention[1].shape) == (1, 2, 6, 6)
    named = FeatureRecorder(model, ["mix"], attention=False)
    with named.recording() as record:
        model(np.zeros((1, 6, 8), "float32"))
    assert tuple(record.hidden[0].shape) == (1, 6, 8)


def test_qat_student_attention_is_recorded():
    model = quantization.quantize_model(bert())
    recorder = FeatureRecorder(model)
    with recorder.recording() as record:
        model(tokens(2), training=True)
    assert sorted(record.attention) == [0, 1]
    np.testing.assert_allclose(np.asarray(record.attention[0]).sum(-1), 1.0, atol=1e-2)


def test_errors():
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Expected the teacher to expose transformer blocks"):
        FeatureRecorder(mlp, role="teacher").require_blocks("HiddenStateMSE")
    with pytest.raises(ValueError, match=r"Expected student_layers to name layers.*missing=\['nope'\]"):
        FeatureRecorder(mlp, ["nope"])
    recorder = FeatureRecorder(mlp, [mlp.layers[0].name])
    with pytest.raises(ValueError, match="Expected each student block to hold a MultiHeadAttention"):
        recorder.require_attention("AttentionKL")
