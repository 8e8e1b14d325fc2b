"""Distillation tests: tiny keras-hub teachers and students, and their data."""

import numpy as np
import pytest

from tests.helpers import tiny_bert_classifier

VOCABULARY = 64
SEQUENCE = 8


def bert(layers=2, width=16, heads=2, dropout=0.0, seed=0):
    """A tiny BertTextClassifier on preprocessed inputs."""
    return tiny_bert_classifier(
        SEQUENCE, layers=layers, width=width, heads=heads, vocabulary=VOCABULARY, dropout=dropout, seed=seed
    )


def tokens(n=32, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((n, SEQUENCE), "int32")
    mask[:, SEQUENCE - 2 :] = rng.integers(0, 2, (n, 2))  # Some padding, so masks matter.
    return {
        "token_ids": rng.integers(1, VOCABULARY, (n, SEQUENCE)).astype("int32") * mask,
        "segment_ids": np.zeros((n, SEQUENCE), "int32"),
        "padding_mask": mask,
    }


def labels(n=32, seed=0):
    return np.random.default_rng(seed + 1).integers(0, 2, n)


@pytest.fixture
def teacher():
    return bert(layers=4, width=16, heads=4, seed=0)


@pytest.fixture
def student():
    return bert(layers=2, width=8, heads=2, seed=1)
