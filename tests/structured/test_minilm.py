"""Structured pruning of the real all-MiniLM-L6-v2 classifier (slow: marked large)."""

import os
import tempfile

import numpy as np
import pytest

import tflite_export
from kcompress import structured
from kcompress.data import load_minilm_classifier, load_rotten_tomatoes

SEQ = 32


@pytest.mark.large
def test_minilm_heads_and_ffn_half():
    model = load_minilm_classifier(num_classes=2, sequence_length=SEQ)
    train = load_rotten_tomatoes("train", size=64)
    x = model.preprocessor(train.texts)
    x = {k: np.asarray(v) for k, v in x.items()}
    y = np.asarray(train.labels)
    scores = structured.importance_scores(model, (x, y), batches=2, batch_size=32, verbose=0)
    assert [len(s) for s in scores.heads] == [12] * 6 and [len(s) for s in scores.ffn] == [1536] * 6

    small = structured.prune_transformer(model, heads=0.5, ffn=0.5, importance=scores)
    assert small.backbone.num_heads == [6] * 6 and small.backbone.intermediate_dim == [768] * 6
    assert small.backbone.key_dim == 32
    assert small.preprocessor is model.preprocessor
    plan = structured.make_plan(structured._model.architecture(model), scores, heads=0.5, ffn=0.5)
    reference = np.asarray(structured.mask_transformer(model, plan)(x, training=False))
    np.testing.assert_allclose(np.asarray(small(x, training=False)), reference, atol=1e-5, rtol=0)
    # Raw strings still work through the shared preprocessor.
    assert small.predict(["A fine film.", "Dreadful."], verbose=0).shape == (2, 2)

    encoder_before = model.backbone.count_params() - model.backbone.token_embedding.count_params()
    encoder_after = small.backbone.count_params() - small.backbone.token_embedding.count_params()
    assert encoder_after < 0.6 * encoder_before

    path = os.path.join(tempfile.mkdtemp(), "small.tflite")
    tflite_export.convert(small, path, mode="float32", input_shapes={k: (SEQ,) for k in x})
    report = tflite_export.verify(small, path, {k: v[:8] for k, v in x.items()})
    assert report.agreement == 1.0 and report.max_abs_diff < 1e-4
