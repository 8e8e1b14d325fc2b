"""Run a layer with some variables replaced by computed values."""

import keras


def call_with_values(fn, mapping, variables=()):
    """Calls `fn()` with each variable of `mapping` read as its mapped value.

    Assignments made inside `fn` to any of `variables` (range trackers,
    dropout seeds) are applied after the call rather than lost in the
    `keras.StatelessScope`.

    Args:
        fn: Zero-argument callable.
        mapping: List of ``(variable, value)`` pairs.
        variables: Variables whose in-call updates must be kept.

    Returns:
        What `fn` returns.

    Example:

    >>> v = keras.Variable(1.0)
    >>> float(call_with_values(lambda: v.value * 2, [(v, 5.0)]))
    10.0
    """
    with keras.StatelessScope(state_mapping=mapping) as scope:
        result = fn()
    mapped = {id(variable) for variable, _ in mapping}
    for variable in variables:
        if id(variable) in mapped:
            continue
        value = scope.get_current_value(variable)
        if value is not None:
            variable.assign(value)
    return result
