"""Turns the data arguments (a `tf.data.Dataset` or ``(x, y)`` arrays) into NumPy batches.

NumPy batches feed the model under any Keras backend; TensorFlow is imported
only to recognize a `tf.data.Dataset` (which needs it anyway).
"""

import sys

import keras
import numpy as np

from kcompress._errors import expected_error


def _to_numpy(value):
    return keras.tree.map_structure(np.asarray, value)


def _is_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (without importing TensorFlow when nothing did)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def _rows(x):
    first = next(iter(x.values())) if isinstance(x, dict) else x
    return len(first)


def _split(item):
    """``(x, y)`` from a dataset element or an ``(x, y)`` tuple; y is None when absent."""
    if isinstance(item, (tuple, list)):
        return item[0], (item[1] if len(item) > 1 else None)
    return item, None


def _from_arrays(data, batch_size):
    x, y = _split(data)
    x = _to_numpy(x)
    y = None if y is None else np.asarray(y)
    n = _rows(x)
    batches = []
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        xb = {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]
        batches.append((xb, None if y is None else y[rows]))
    return batches


def batches(data, name, batch_size=32, count=None, labels=True):
    """Returns ``[(x, y), ...]`` NumPy batches of `data`, at most `count` of them.

    Args:
        data: A batched `tf.data.Dataset` of ``(x, y)`` (or of ``x`` when
            `labels` is False), or an ``(x, y)`` tuple of arrays, `x` being a
            dict of token_ids / segment_ids / padding_mask arrays.
        name: The argument's name, for messages.
        batch_size: Rows per batch when `data` is arrays.
        count: Number of batches needed; fewer is an error.
        labels: Whether `y` is required.
    """
    if data is None:
        raise expected_error(f"{name}: a tf.data.Dataset or (x, y) arrays of preprocessed inputs", **{name: None})
    if _is_dataset(data):
        source = data.take(count) if count is not None else data
        found = [_split(item) for item in source]
        found = [(_to_numpy(x), None if y is None else np.asarray(y)) for x, y in found]
    elif isinstance(data, (tuple, list)) and 1 <= len(data) <= 3:
        found = _from_arrays(data, batch_size)[:count]
    elif isinstance(data, dict):
        found = _from_arrays((data,), batch_size)[:count]
    else:
        raise expected_error(
            f"{name}: a tf.data.Dataset or (x, y) arrays of preprocessed inputs", **{name: type(data).__name__}
        )
    if labels and any(y is None for _, y in found):
        raise expected_error(f"{name} with labels: (x, y) arrays or a dataset of (x, y) batches", **{name: "no labels"})
    if count is not None and len(found) < count:
        raise expected_error(
            f"{name} with at least {count} batches (of batch_size={batch_size} for arrays); pass more data or "
            f"ask for fewer batches",
            batches=len(found),
        )
    if not found:
        raise expected_error(f"{name} with at least one batch", batches=0)
    return found


def concatenated(found):
    """One ``(x, y)`` from a list of batches."""
    xs = [x for x, _ in found]
    x = {k: np.concatenate([b[k] for b in xs]) for k in xs[0]} if isinstance(xs[0], dict) else np.concatenate(xs)
    return x, np.concatenate([y for _, y in found])
