"""Tiny keras-hub BERT models and data for the structured-pruning tests."""

import keras
import numpy as np

from kcompress.structured import _model
from kcompress.structured.plan import make_plan
from tests.helpers import tiny_bert_backbone, tiny_bert_classifier

SEQ = 16
VOCAB = 100
# Taylor scores of `tiny_classifier()` on `inputs(32)` in 2 batches of 16, under TensorFlow in float32.
TF_HEAD_SCORES = [[0.2004, 0.28861, 0.3718, 0.17637], [0.25037, 0.18537, 0.31488, 0.494]]
TF_FFN_SCORE_SUMS = [2.29141, 2.47668]


def tiny_backbone(num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32, scale=0.3, seed=0):
    """A tiny BertBackbone with weights large enough that every head and unit matters."""
    backbone = tiny_bert_backbone(
        layers=num_layers,
        width=hidden_dim,
        heads=num_heads,
        vocabulary=VOCAB,
        seq_len=SEQ,
        intermediate=intermediate_dim,
    )
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:
        if "gamma" in variable.path or "beta" in variable.path:
            continue
        variable.assign(rng.normal(0.0, scale, tuple(variable.shape)).astype("float32"))
    return backbone


def tiny_classifier(**kwargs):
    model = tiny_bert_classifier(backbone=tiny_backbone(**kwargs))
    model.output_dense.kernel.assign(np.random.default_rng(1).normal(0, 1.0, (kwargs.get("hidden_dim", 16), 2)))
    return model


def inputs(n=64, seed=0):
    """Preprocessed inputs with varied padding, and random labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, SEQ + 1, (n, 1))
    x = {
        "token_ids": rng.integers(0, VOCAB, (n, SEQ)).astype("int32"),
        "segment_ids": (np.arange(SEQ)[None] >= lengths // 2).astype("int32"),
        "padding_mask": (np.arange(SEQ)[None] < lengths).astype("int32"),
    }
    return x, rng.integers(0, 2, n)


def plan_for(model, importance, **targets):
    return make_plan(_model.architecture(model), importance, **targets)


def logits(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
