"""A calibration CSV turned into model inputs for ``kcompress export``.

- A model with a preprocessor (a keras-hub text classifier saved with its
  preprocessor): the CSV's ``text`` column goes through
  ``model.preprocessor(texts)``, giving token ids, segment ids and the
  padding mask, cast to the model's input dtypes.
- Any other model: every column but ``label`` must be numeric; the rows are
  the features, reshaped to the (single) model input's shape when it is static.
  A model without known inputs (subclassed) gets the rows as they are, as
  ``keras.backend.floatx()``: `tflite_export.convert` reads its input shape
  and dtype from them.
"""

import csv
import itertools
import math

import numpy as np

from kcompress._errors import expected_error
from kcompress.cli._errors import UsageError
from kcompress.cli._model import named_inputs
from kcompress.cli._output import quiet

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"


def read_csv(flag, path, max_rows):
    """Reads the first `max_rows` data rows of a CSV with a header, column by column.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "data.csv")
    >>> _ = open(path, "w").write("text,label\\ngood film,1\\nbad film,0\\n")
    >>> read_csv("--calibration", path, max_rows=10)
    {'text': ['good film', 'bad film'], 'label': ['1', '0']}
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            names = reader.fieldnames
            rows = list(itertools.islice(reader, max_rows))
    except (UnicodeDecodeError, csv.Error) as error:
        raise UsageError(
            f"{expected_error(f'{flag} to be a UTF-8 CSV file', **{flag: path})} ({type(error).__name__}: {error})"
        ) from None
    if not names or not rows:
        raise UsageError(str(expected_error(f"{flag} to be a CSV with a header row and data rows", **{flag: path})))
    return {name: [row[name] if row[name] is not None else "" for row in rows] for name in names}


def model_inputs(flag, model, columns):
    """The CSV columns as inputs of `model` (see the module docstring).

    Raises:
        UsageError: The columns do not fit the model.
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        return _tokenized(flag, model, preprocessor, columns)
    return _numeric(flag, model, columns)


def input_dtypes(model):
    """``{input name: dtype string}`` of a Keras model."""
    import keras

    return {name: keras.backend.standardize_dtype(tensor.dtype) for name, tensor in named_inputs(model)}


def _tokenized(flag, model, preprocessor, columns):
    if TEXT_COLUMN not in columns:
        raise UsageError(
            str(
                expected_error(
                    f"a '{TEXT_COLUMN}' column in {flag}: the model has a preprocessor that tokenizes texts",
                    columns=list(columns),
                )
            )
        )
    with quiet():
        tokens = preprocessor(columns[TEXT_COLUMN])
    if isinstance(tokens, tuple):  # (x, y, sample_weight) from some preprocessors.
        tokens = tokens[0]
    dtypes = input_dtypes(model)
    if not isinstance(tokens, dict):
        return np.asarray(tokens).astype(next(iter(dtypes.values()), "int32"))
    return {name: np.asarray(value).astype(dtypes.get(name, "int32")) for name, value in tokens.items()}


def _numeric(flag, model, columns):
    names = [name for name in columns if name != LABEL_COLUMN]
    if not names:
        raise UsageError(str(expected_error(f"feature columns in {flag} besides '{LABEL_COLUMN}'", columns=names)))
    values = []
    for name in names:
        try:
            values.append([float(v) for v in columns[name]])
        except ValueError:
            raise UsageError(
                str(
                    expected_error(
                        f"numeric columns in {flag}: the model has no preprocessor to tokenize texts (save a keras-hub "
                        "model with its preprocessor)",
                        column=name,
                    )
                )
            ) from None
    features = np.asarray(values, np.float64).T
    inputs = [tensor for _, tensor in named_inputs(model)]
    if not inputs:  # A subclassed model: the rows are its one input, in Keras' float dtype.
        import keras

        return features.astype(keras.backend.floatx())
    if len(inputs) != 1:
        raise UsageError(str(expected_error(f"a model with one input for a numeric {flag}", inputs=len(inputs))))
    shape = tuple(inputs[0].shape[1:])
    if None not in shape:
        size = math.prod(shape)
        if features.shape[1] != size:
            raise UsageError(
                str(
                    expected_error(
                        f"{size} numeric columns in {flag} for the model input of shape {shape}",
                        columns=features.shape[1],
                    )
                )
            )
        features = features.reshape((-1, *shape))
    return features.astype(next(iter(input_dtypes(model).values())))
