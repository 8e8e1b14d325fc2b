"""Each loss against a NumPy hand computation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompress.distillation import (
    AttentionKL,
    EmbeddingMSE,
    HardLabelCE,
    HiddenStateMSE,
    LayerMap,
    LossInputs,
    SoftLabelKL,
)
from tests.helpers import run_serialization_test


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def identity(key, x):
    return x


def test_soft_label_kl_matches_hand_computation():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    t = 3.0
    p, q = softmax(teacher / t), softmax(student / t)
    expected = t * t * np.sum(p * (np.log(p) - np.log(q)), axis=-1)
    got = SoftLabelKL(temperature=t)(LossInputs({"logits": teacher}, {"logits": student}))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.5, 8.0), st.integers(0, 1000))
def test_soft_label_kl_is_non_negative_and_zero_on_equal_logits(temperature, seed):
    logits = np.random.default_rng(seed).normal(size=(4, 5)).astype("float32") * 3
    other = np.random.default_rng(seed + 1).normal(size=(4, 5)).astype("float32") * 3
    loss = SoftLabelKL(temperature=temperature)
    assert np.all(np.asarray(loss(LossInputs({"logits": logits}, {"logits": other}))) >= -1e-6)
    np.testing.assert_allclose(np.asarray(loss(LossInputs({"logits": logits}, {"logits": logits}))), 0, atol=1e-5)


def test_hard_label_ce_sparse_and_one_hot():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    y = np.array([0, 2])
    expected = -np.log(softmax(logits)[np.arange(2), y])
    got = HardLabelCE()(LossInputs({}, {"logits": logits}, labels=y))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    one_hot = np.eye(3, dtype="float32")[y]
    got = HardLabelCE()(LossInputs({}, {"logits": logits}, labels=one_hot))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


def test_hard_label_ce_without_labels_says_what_to_do():
    with pytest.raises(ValueError, match="alpha=1.0"):
        HardLabelCE()(LossInputs({}, {"logits": np.zeros((1, 2), "float32")}))


def test_hidden_state_mse_averages_mapped_pairs_after_projection():
    rng = np.random.default_rng(1)
    teacher = {f"hidden/{i}": rng.normal(size=(2, 4, 6)).astype("float32") for i in range(4)}
    student = {f"hidden/{i}": rng.normal(size=(2, 4, 3)).astype("float32") for i in range(2)}
    w = rng.normal(size=(3, 6)).astype("float32")
    pairs = LayerMap("uniform").resolve(4, 2)  # (1, 0), (3, 1)
    inputs = LossInputs(teacher, student, pairs=pairs, project=lambda key, x: x @ w)
    expected = np.mean(
        [np.mean((student[f"hidden/{s}"] @ w - teacher[f"hidden/{t}"]) ** 2, axis=(1, 2)) for t, s in pairs], axis=0
    )
    np.testing.assert_allclose(np.asarray(HiddenStateMSE()(inputs)), expected, rtol=1e-5)


def test_embedding_mse():
    rng = np.random.default_rng(2)
    t, s = rng.normal(size=(3, 4, 5)).astype("float32"), rng.normal(size=(3, 4, 5)).astype("float32")
    got = EmbeddingMSE()(LossInputs({"embedding": t}, {"embedding": s}, project=identity))
    np.testing.assert_allclose(np.asarray(got), np.mean((t - s) ** 2, axis=(1, 2)), rtol=1e-5)


def test_attention_kl_same_heads_per_head():
    rng = np.random.default_rng(3)
    t = softmax(rng.normal(size=(2, 3, 4, 4))).astype("float32")
    s = softmax(rng.normal(size=(2, 3, 4, 4))).astype("float32")
    expected = np.mean(np.sum(t * (np.log(t) - np.log(s)), axis=-1), axis=(1, 2))
    got = AttentionKL()(LossInputs({"attention/1": t}, {"attention/0": s}, pairs=((1, 0),)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)


def test_attention_kl_different_heads_compares_head_means():
    rng = np.random.default_rng(4)
    t = softmax(rng.normal(size=(2, 4, 3, 3))).astype("float32")
    s = softmax(rng.normal(size=(2, 2, 3, 3))).astype("float32")
    tm, sm = t.mean(axis=1), s.mean(axis=1)
    expected = np.mean(np.sum(tm * (np.log(tm) - np.log(sm)), axis=-1), axis=1)
    got = AttentionKL()(LossInputs({"attention/0": t}, {"attention/0": s}, pairs=((0, 0),)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)


def test_attention_kl_ignores_masked_keys():
    t = np.array([[[[0.5, 0.5, 0.0]]]], "float32")
    s = np.array([[[[0.5, 0.5, 0.0]]]], "float32")
    got = AttentionKL()(LossInputs({"attention/0": t}, {"attention/0": s}, pairs=((0, 0),)))
    assert abs(float(np.asarray(got)[0])) < 1e-6


@pytest.mark.parametrize("temperature", [0, -1.0, "hot", True])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="Expected temperature > 0"):
        SoftLabelKL(temperature=temperature)


@pytest.mark.parametrize("weight", [-0.1, "1", None])
def test_bad_weight(weight):
    with pytest.raises(ValueError, match="Expected weight to be a non-negative number"):
        HiddenStateMSE(weight=weight)


@pytest.mark.parametrize(
    "loss",
    [
        SoftLabelKL(temperature=3.0, weight=0.7),
        HardLabelCE(weight=0.3, name="ce"),
        HiddenStateMSE(layers="last", weight=2.0),
        AttentionKL(layers=[(0, 0), (3, 1)]),
        EmbeddingMSE(weight=0.5),
    ],
)
def test_serialization(loss):
    restored = run_serialization_test(loss)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
