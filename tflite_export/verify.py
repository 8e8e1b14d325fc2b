"""Does the `.tflite` compute what the Keras model computes?

`verify` runs the same examples through both, one example at a time through
the LiteRT interpreter (as on a device), and reports how often the predicted
class agrees and how far the outputs are apart, in absolute terms and, for
int8/int16 outputs, in quantization steps.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kcompress._errors import check_int, expected_error
from kcompress._inputs import as_model_inputs
from tflite_export import _signature as _signatures
from tflite_export._runner import Runner

_KERAS_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class Verification:
    """Keras vs `.tflite` on the same examples.

    Attributes:
        examples: Number of examples compared.
        agreement: Fraction of examples whose prediction agrees: the argmax
            over the last axis (every position must agree for sequence
            outputs); for one-unit outputs, ``output > 0.5`` if the Keras
            outputs are probabilities in [0, 1], else ``output > 0``.
        max_abs_diff: Largest ``|keras - tflite|`` over all output values.
        mean_abs_diff: Mean ``|keras - tflite|``.
        output_scale: Quantization step of the `.tflite` output; ``None``
            for float outputs.
        max_diff_in_steps: ``max_abs_diff / output_scale``; ``None`` for float.
        within_one_step: Fraction of output values at most one step (+1e-6)
            apart; ``None`` for float outputs.
    """

    examples: int
    agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    output_scale: float | None = None
    max_diff_in_steps: float | None = None
    within_one_step: float | None = None

    def __str__(self):
        lines = [
            f"Keras vs .tflite on {self.examples} examples: {self.agreement:.1%} agree",
            f"max |diff| {self.max_abs_diff:.3g}, mean |diff| {self.mean_abs_diff:.3g}",
        ]
        if self.output_scale is not None:
            lines[-1] += (
                f" ({self.max_diff_in_steps:.2f} steps of {self.output_scale:.3g} at most;"
                f" {self.within_one_step:.1%} of values within one step)"
            )
        return "\n".join(lines)


def verify(model, path, data, max_examples=None, num_threads=1):
    """Compares a Keras model with its `.tflite` conversion on `data`.

    Args:
        model: The Keras model that was converted (dict inputs are fine).
        path: Path to the `.tflite` file, or its bytes.
        data: Inputs: a NumPy array, a dict of arrays keyed by input name, a
            list of arrays (one per input, for a `.tflite` with several
            inputs, in the order `convert` got them), a tuple ``(x, y)`` or
            ``(x, y, sample_weight)`` whose `x` is used, or a
            `tf.data.Dataset` yielding `x` or ``(x, y)`` batches.
        max_examples: Compare at most this many examples (all by default).
        num_threads: LiteRT interpreter threads.

    Returns:
        A `Verification`.

    Example:

    >>> import keras, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> f = tf.function(model, input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    >>> tflite = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()
    >>> report = verify(model, tflite, np.random.default_rng(0).normal(size=(8, 4)))
    >>> report.examples, report.agreement, report.max_abs_diff < 1e-5
    (8, 1.0, True)
    """
    if not callable(model):
        raise expected_error("a Keras model", model=type(model).__name__)
    if max_examples is not None:
        max_examples = check_int("max_examples", max_examples, minimum=1)
    runner = Runner(path, num_threads=num_threads)
    if len(runner.output_names) != 1:
        raise expected_error("a .tflite with one output", outputs=runner.output_names)
    x = _features(data, max_examples, len(runner.input_names))
    lite = next(iter(runner.run_batch(_by_name(model, x, runner), max_examples=max_examples).values()))
    n = len(lite.value)
    reference = _keras_outputs(model, x, n)
    actual = np.asarray(lite.value, np.float64)
    if reference.shape != actual.shape:
        raise expected_error(
            f"the .tflite output to have the Keras output's shape {reference.shape}", tflite_shape=actual.shape
        )
    diff = np.abs(reference - actual)
    scale = lite.scale
    return Verification(
        examples=n,
        agreement=_agreement(reference, actual),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        output_scale=scale,
        max_diff_in_steps=None if scale is None else float(diff.max() / scale),
        within_one_step=None if scale is None else float(np.mean(diff <= scale + 1e-6)),
    )


def _features(data, max_examples, inputs=1):
    """`data` as an array, a list (one per input) or a dict of arrays holding the model inputs."""
    if isinstance(data, tf.data.Dataset):
        data = _from_dataset(data, max_examples)
    elif _one_per_input(data, inputs):
        features = [np.asarray(value) for value in data]
        if any(a.ndim == 0 or len(a) == 0 for a in features):
            raise expected_error("non-empty data with examples on the first axis", shapes=_shapes(features))
        return features
    elif isinstance(data, (tuple, list)):
        if not 1 <= len(data) <= 3:
            raise expected_error("a tuple (x,), (x, y) or (x, y, sample_weight)", data=f"tuple of {len(data)}")
        data = data[0]
    if _one_per_input(data, inputs):
        return _features(data, None, inputs)
    if isinstance(data, dict):
        features = {name: np.asarray(value) for name, value in data.items()}
    else:
        features = np.asarray(data)
    arrays = features.values() if isinstance(features, dict) else [features]
    if any(a.ndim == 0 or len(a) == 0 for a in arrays) or not arrays:
        raise expected_error("non-empty data with examples on the first axis", shapes=_shapes(features))
    return features


def _one_per_input(data, inputs):
    """Whether `data` is a list of arrays, one per input of a `.tflite` with several inputs."""
    return inputs > 1 and isinstance(data, list) and len(data) == inputs and all(_signatures.is_array(v) for v in data)


def _by_name(model, x, runner):
    """A list of arrays as ``{.tflite input name: array}``, named as `convert` named the model's inputs."""
    if not isinstance(x, list):
        return x
    names = _signatures.input_names(model, len(x))
    if sorted(names) != sorted(runner.input_names):
        raise expected_error(
            f"a dict keyed by the .tflite input names {runner.input_names} (the list's names {names} do not match)",
            data=f"list of {len(x)} arrays",
        )
    return dict(zip(names, x))


def _from_dataset(dataset, max_examples):
    """Concatenates the `x` of a dataset's batches, stopping after `max_examples`."""
    batches, seen = [], 0
    for element in dataset:
        if isinstance(element, (tuple, list)):
            element = element[0]
        element = tf.nest.map_structure(lambda t: np.asarray(t), element)
        batches.append(element)
        first = next(iter(element.values())) if isinstance(element, dict) else element
        seen += len(first) if first.ndim else 1
        if max_examples is not None and seen >= max_examples:
            break
    if not batches:
        raise expected_error("a dataset with at least one batch", data="empty tf.data.Dataset")
    if isinstance(batches[0], dict):
        return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    return np.concatenate(batches)


def _keras_outputs(model, x, n):
    """Runs Keras in chunks; returns the single output as float64."""
    chunks = []
    for start in range(0, n, _KERAS_CHUNK):
        out = model(as_model_inputs(model, _rows(x, start, min(start + _KERAS_CHUNK, n))), training=False)
        if isinstance(out, dict):
            out = list(out.values())
        if isinstance(out, (list, tuple)):
            if len(out) != 1:
                raise expected_error("a Keras model with one output", outputs=len(out))
            out = out[0]
        chunks.append(np.asarray(keras.ops.convert_to_numpy(out), np.float64))
    return np.concatenate(chunks)


def _rows(x, start, stop):
    if isinstance(x, list):
        return [v[start:stop] for v in x]
    return {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]


def _agreement(reference, actual):
    """Fraction of examples whose predicted class (or side of the threshold) agrees."""
    if reference.ndim >= 2 and reference.shape[-1] > 1:
        same = np.argmax(reference, axis=-1) == np.argmax(actual, axis=-1)
    else:
        threshold = 0.5 if reference.min() >= 0.0 and reference.max() <= 1.0 else 0.0
        same = (reference > threshold) == (actual > threshold)
    return float(same.reshape(len(reference), -1).all(axis=1).mean())


def _shapes(features):
    if isinstance(features, list):
        return [tuple(np.shape(v)) for v in features]
    if isinstance(features, dict):
        return {name: tuple(np.shape(v)) for name, v in features.items()}
    return tuple(np.shape(features))
