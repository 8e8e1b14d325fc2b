"""The pipeline's texts and labels (the shipped snippets or a user's CSV), and the checks images share."""

import csv
import dataclasses
import io
import os

import numpy as np

from kcompress._errors import expected_error
from kcompress.data import CLASS_NAMES, TextSplit, load_rotten_tomatoes


@dataclasses.dataclass(frozen=True)
class Tokens:
    """The model inputs of the train and test examples: token-id arrays of texts, or images."""

    x_train: dict
    y_train: np.ndarray
    x_test: dict
    y_test: np.ndarray


# A CSV's rows are split 4:1 into training and test texts: 5 rows of a label
# give it 4 to train on and 1 to test on (on average; the split is random).
MIN_EXAMPLES_PER_CLASS = 5
_SHOWN = 5  # Labels named in a too-few-rows error.


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
    """Reads a UTF-8 CSV with ``text`` and ``label`` columns into a `TextSplit`.

    Labels may be integers (``0`` to ``n - 1``) or names; names are
    numbered in sorted order. Every row needs a label.

    Returns:
        ``(split, class_names)``.

    Raises:
        ValueError: The file is missing, not UTF-8 (the message names the
            line), not a CSV with both columns, or a row has no label.

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
    reader = csv.DictReader(io.StringIO(_read_utf8(path), newline=""))
    rows = []
    try:
        columns = reader.fieldnames or []
        if not {"text", "label"} <= set(columns):
            raise expected_error("a CSV file with 'text' and 'label' columns", data=path, columns=sorted(columns))
        for row in reader:
            label = (row.get("label") or "").strip()
            if not label:
                raise expected_error("a label on every row", data=path, line=reader.line_num, label=label)
            rows.append((row.get("text") or "", label))
    except csv.Error as error:
        line = reader.reader.line_num  # DictReader's own line_num stops at the last good row.
        raise expected_error("a readable CSV file", data=path, line=line, error=str(error)) from None
    if not rows:
        raise expected_error("rows of texts and labels under the header", data=path, rows=0)
    labels = [label for _, label in rows]
    if all(label.isascii() and label.isdigit() for label in labels):
        numbers = [int(label) for label in labels]
        names = tuple(str(i) for i in range(max(numbers) + 1))
    else:
        names = tuple(sorted(set(labels)))
        index = {name: i for i, name in enumerate(names)}
        numbers = [index[label] for label in labels]
    return TextSplit([text for text, _ in rows], numbers), names


def _read_utf8(path):
    """The file's text (a UTF-8 byte-order mark dropped); a byte that is not UTF-8 is an error naming its line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = f"0x{data[error.start]:02x}"
        raise expected_error("a UTF-8 text file", data=path, line=line, byte=byte) from None


def check_examples(labels, names, data, items="rows", each="of each label"):
    """Raises unless there are 2+ classes with `MIN_EXAMPLES_PER_CLASS` examples each.

    `items` and `each` word the message (``"images"``, ``"in each class
    folder"`` for a folder of images).

    Example:

    >>> try:
    ...     check_examples([0, 1, 1], ("neg", "pos"), data="t.csv")
    ... except ValueError as error:
    ...     print(str(error).replace(". ", ".\\n"))
    Expected at least 5 rows of each label (4 to train on, 1 to test on).
    Received: data='t.csv', rows={'neg': 1, 'pos': 2}
    """
    if len(names) < 2:
        raise expected_error("labels of at least 2 classes", data=data, labels=list(names))
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(names))
    if counts.min() < MIN_EXAMPLES_PER_CLASS:
        few = {name: int(count) for name, count in zip(names, counts) if count < MIN_EXAMPLES_PER_CLASS}
        shown = dict(list(few.items())[:_SHOWN])
        if len(few) > _SHOWN:
            shown["..."] = f"{len(few) - _SHOWN} more"
        raise expected_error(
            f"at least {MIN_EXAMPLES_PER_CLASS} {items} {each} "
            f"({MIN_EXAMPLES_PER_CLASS - 1} to train on, 1 to test on)",
            **{"data": data, items: shown},
        )


def check_num_classes(num_classes, names, data):
    """Raises unless `num_classes` is ``None`` (take the data's) or the number of `names`.

    Example:

    >>> check_num_classes(2, ("a", "b", "c"), data="t.csv")
    Traceback (most recent call last):
    ...
    ValueError: Expected num_classes=3 (the labels in t.csv). Received: num_classes=2
    """
    if num_classes is not None and num_classes != len(names):
        raise expected_error(f"num_classes={len(names)} (the labels in {data})", num_classes=num_classes)


def check_outputs(outputs, num_classes, config):
    """Raises unless a classifier with `outputs` outputs has one per label of `config`'s data.

    Example:

    >>> from kcompress.pipeline import PipelineConfig
    >>> check_outputs(2, 8, PipelineConfig(model="m.keras", data="t.csv"))
    Traceback (most recent call last):
    ...
    ValueError: Expected a model with 8 outputs (the labels in t.csv). Received: model='m.keras', outputs=2
    """
    if outputs != num_classes:
        raise expected_error(
            f"a model with {num_classes} outputs (the labels in {config.data})", model=config.model, outputs=outputs
        )


def split_train_test(examples, config):
    """``(train, test)`` of `examples` (anything indexable by an index array, with a length).

    A permutation seeded by ``config.seed`` puts a fifth of the examples, up
    to ``config.test_size``, in the test set; the first
    ``config.train_size`` of the rest (all if ``None``) are for training.

    Example:

    >>> import numpy as np
    >>> from kcompress.pipeline import PipelineConfig
    >>> train, test = split_train_test(np.arange(10), PipelineConfig(train_size=3))
    >>> len(train), len(test), set(train.tolist()).isdisjoint(test.tolist())
    (3, 2, True)
    """
    order = np.random.default_rng(config.seed).permutation(len(examples))
    test_size = min(config.test_size, len(examples) // 5 or 1)
    test, train = examples[order[:test_size]], examples[order[test_size:]]
    if config.train_size is not None:
        train = train[: config.train_size]
    return train, test


def _csv(config):
    split, names = read_labelled_csv(config.data)
    check_examples(split.labels, names, config.data)
    train, test = split_train_test(split, config)
    return TextData(train=train, test=test, class_names=names)


def load_text_data(config):
    """Loads the texts a `PipelineConfig` names (its ``data`` field), and checks them.

    Cheap (no model is built): run it first to find bad data before any long work.

    Raises:
        ValueError: The data cannot be read or split (see `read_labelled_csv`
            and `check_examples`), or ``config.num_classes`` is not the
            number of its labels.
    """
    data = _rotten_tomatoes(config) if config.data == "rotten_tomatoes" else _csv(config)
    check_num_classes(config.num_classes, data.class_names, config.data)
    return data


def head(inputs, n):
    """The first `n` examples of model inputs: an array, or a dict of arrays (token ids).

    Example:

    >>> import numpy as np
    >>> head({"ids": np.arange(5)}, 2), head(np.arange(5), 3)
    ({'ids': array([0, 1])}, array([0, 1, 2]))
    """
    if isinstance(inputs, dict):
        return {name: value[:n] for name, value in inputs.items()}
    return inputs[:n]


def tokenize(preprocessor, texts, batch_size=256):
    """Runs a keras-hub preprocessor over texts into int32 NumPy token arrays."""
    texts = list(texts)
    batches = [preprocessor(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return {key: np.concatenate([np.asarray(batch[key]) for batch in batches]).astype("int32") for key in batches[0]}
