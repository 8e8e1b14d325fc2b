"""Representative data for `convert`: batches of `batch_size` rows, checked against the signature."""

import numpy as np
import tensorflow as tf

from kcompress._errors import expected_error
from tflite_export import _signature as _signatures


def _rows(counts):
    """The one row count of several arrays (a set of their lengths, None for one without rows), or an error."""
    if len(counts) != 1 or None in counts:
        raise expected_error("representative_data arrays with the same number of rows", representative_data=counts)
    return counts.pop()


def batches(data, batch_size, steps, several_inputs=False):
    """Representative data as a list of batches of `batch_size` rows.

    With `several_inputs` (not `False`), a list of arrays holds one array per input.
    """
    if data is None:
        return []
    if isinstance(data, tf.data.Dataset):
        data = data.map(lambda *item: item[0]) if isinstance(data.element_spec, tuple) else data
        data = data.unbatch().batch(batch_size, drop_remainder=True).take(steps)
        return [tf.nest.map_structure(lambda t: t.numpy(), item) for item in data]
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (int, float)):
        data = data[0]
    if isinstance(data, dict):
        n = _rows({len(np.asarray(v)) for v in data.values()})
        return [{k: np.asarray(v)[i : i + batch_size] for k, v in data.items()} for i in range(0, n, batch_size)][
            :steps
        ]
    if (
        several_inputs is not False
        and isinstance(data, list)
        and len(data) > 1
        and all(_signatures.is_array(v) for v in data)
    ):
        n = _rows({len(v) if np.ndim(v) else None for v in data})
        return [[np.asarray(v)[i : i + batch_size] for v in data] for i in range(0, n - batch_size + 1, batch_size)][
            :steps
        ]
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (list, tuple)):
        return [list(item) for item in data][:steps]
    array = np.asarray(data)
    if array.ndim == 0:
        raise expected_error("representative_data with a batch axis", representative_data=array.shape)
    return [array[i : i + batch_size] for i in range(0, len(array) - batch_size + 1, batch_size)][:steps]


def fitted(signature, example):
    """Raises if an example does not fit the signature; returns it cast."""

    def fit(spec, value):
        value = np.asarray(value)
        if tuple(value.shape) != tuple(spec.shape):
            raise expected_error(
                f"representative_data for input '{spec.name}' of shape {tuple(spec.shape)}",
                shape=tuple(value.shape),
            )
        want = spec.dtype.as_numpy_dtype
        if np.dtype(want).kind != value.dtype.kind and not (np.dtype(want).kind == "f" and value.dtype.kind in "iu"):
            raise expected_error(
                f"representative_data for input '{spec.name}' of dtype {np.dtype(want).name}",
                dtype=value.dtype.name,
            )
        return value.astype(want)

    if isinstance(signature, dict):
        if not isinstance(example, dict) or set(example) != set(signature):
            got = sorted(example) if isinstance(example, dict) else type(example).__name__
            raise expected_error(f"representative_data with the inputs {sorted(signature)}", inputs=got)
        return {k: fit(signature[k], example[k]) for k in signature}
    if isinstance(signature, list):
        if not isinstance(example, list) or len(example) != len(signature):
            raise expected_error(f"representative_data with {len(signature)} inputs", inputs=example)
        return [fit(s, v) for s, v in zip(signature, example)]
    return [fit(signature, example)]
