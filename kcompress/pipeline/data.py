"""The pipeline's texts and labels: the shipped snippets or a user's CSV."""

import csv
import dataclasses
import os

import numpy as np

from kcompress._errors import expected_error
from kcompress.data import CLASS_NAMES, TextSplit, load_rotten_tomatoes


@dataclasses.dataclass(frozen=True)
class TextData:
    """Train and test texts, and the class names (for the label file)."""

    train: TextSplit
    test: TextSplit
    class_names: tuple


def _rotten_tomatoes(config):
    return TextData(
        train=load_rotten_tomatoes("train", size=config.train_size, seed=config.seed),
        test=load_rotten_tomatoes("test", size=config.test_size, seed=config.seed),
        class_names=tuple(CLASS_NAMES),
    )


def read_labelled_csv(path):
    """Reads a CSV with ``text`` and ``label`` columns into a `TextSplit`.

    Labels may be integers or names; names are numbered in sorted order.

    Returns:
        ``(split, class_names)``.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = path.write_text("text,label\\ngreat,pos\\ndull,neg\\n")
    >>> split, names = read_labelled_csv(path)
    >>> split.labels.tolist(), names
    ([1, 0], ('neg', 'pos'))
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise expected_error("an existing CSV file with text and label columns", data=path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"text", "label"} <= set(rows[0]):
        columns = sorted(rows[0]) if rows else []
        raise expected_error("a CSV file with 'text' and 'label' columns", data=path, columns=columns)
    labels = [row["label"].strip() for row in rows]
    if all(label.lstrip("-").isdigit() for label in labels):
        numbers = [int(label) for label in labels]
        names = tuple(str(i) for i in range(max(numbers) + 1))
    else:
        names = tuple(sorted(set(labels)))
        numbers = [names.index(label) for label in labels]
    return TextSplit([row["text"] for row in rows], numbers), names


def _csv(config):
    split, names = read_labelled_csv(config.data)
    order = np.random.default_rng(config.seed).permutation(len(split))
    test_size = min(config.test_size, len(split) // 5 or 1)
    test, train = split[order[:test_size]], split[order[test_size:]]
    if config.train_size is not None:
        train = train[: config.train_size]
    return TextData(train=train, test=test, class_names=names)


def load_text_data(config):
    """Loads the texts a `PipelineConfig` names (its ``data`` field)."""
    if config.data == "rotten_tomatoes":
        return _rotten_tomatoes(config)
    return _csv(config)


def tokenize(preprocessor, texts, batch_size=256):
    """Runs a keras-hub preprocessor over texts into int32 NumPy token arrays."""
    texts = list(texts)
    batches = [preprocessor(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return {key: np.concatenate([np.asarray(batch[key]) for batch in batches]).astype("int32") for key in batches[0]}
