"""Loading the `.keras` model a command works on, with a clear error if it cannot be read."""

from kcompress._errors import expected_error
from kcompress.cli._errors import UsageError, one_line
from kcompress.cli._output import quiet


def load_keras_model(flag, path):
    """Loads a `.keras` (or `.h5`) model, keras-hub and kcompress layers included.

    Raises:
        UsageError: The file is not a model Keras can load.
    """
    with quiet():
        import keras
        import keras_hub  # noqa: F401  Registers the keras-hub classes the file may name.

        # kcompress' own classes (pruning, QAT, clustering, ...) need no import here: importing
        # the package registered them with keras (kcompress._registration).
        try:
            return keras.models.load_model(path, compile=False)
        except Exception as error:  # Any failure to read the file is a bad --model.
            reason = one_line(f"{type(error).__name__}: {error}")[:300]
            raise UsageError(
                f"{expected_error(f'{flag} to be a Keras model file keras.models.load_model can read', **{flag: path})}"
                f" ({reason})"
            ) from None


def input_shapes(model, sequence_length):
    """Static shapes for inputs of variable length, for `tflite_export.convert(input_shapes=...)`.

    A model with a preprocessor (keras-hub) gets `sequence_length` set on its
    preprocessor, so calibration texts are tokenized to the exported length;
    without `sequence_length` the preprocessor's own length is used.

    Returns:
        ``{input name: (sequence_length,)}`` for the inputs shaped
        ``(batch, None)``, or ``None`` if there is nothing to fix.

    Raises:
        UsageError: `sequence_length` was given but does not apply or is too long.
    """
    flag = "--sequence-length"
    given = sequence_length
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None and hasattr(preprocessor, "sequence_length"):
        limit = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
        if given is not None and limit is not None and given > limit:
            raise UsageError(
                str(expected_error(f"{flag} <= {limit}, the model's max_sequence_length", **{flag: given}))
            )
        if given is not None:
            preprocessor.sequence_length = given
        sequence_length = preprocessor.sequence_length
    if sequence_length is None:
        return None
    variable = {name: (sequence_length,) for name, tensor in named_inputs(model) if tuple(tensor.shape[1:]) == (None,)}
    if not variable and given is not None:
        raise UsageError(
            str(
                expected_error(
                    f"{flag} only for a model with inputs of variable length, shaped (batch, None)", **{flag: given}
                )
            )
        )
    return variable or None


def named_inputs(model):
    """``[(name, KerasTensor)]`` of the model's inputs (dict inputs keep their keys).

    Empty for a model without known inputs (a subclassed model): `kcompress export`
    then reads the input shapes and dtypes from its ``--calibration`` rows.
    """
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # A loaded Sequential has `inputs` but no `input` until called.
        inputs = None
    if isinstance(inputs, dict):
        return list(inputs.items())
    try:
        tensors = model.inputs
    except (AttributeError, ValueError):
        tensors = None
    return [(getattr(t, "name", None) or f"input_{i}", t) for i, t in enumerate(tensors or [])]


def variable_inputs(model):
    """Names of the inputs with a dimension unknown until run time (besides the batch).

    Example:

    >>> import keras
    >>> ids = keras.Input((None,), dtype="int32", name="ids")
    >>> variable_inputs(keras.Model(ids, keras.layers.Embedding(8, 2)(ids)))
    ['ids']
    """
    return [name for name, tensor in named_inputs(model) if None in tuple(tensor.shape[1:])]
