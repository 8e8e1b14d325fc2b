"""Run a layer with some variables replaced by computed values."""

import keras

# Not in Keras' public API: whether a StatelessScope is open, and which.
from keras.src.backend.common.stateless_scope import get_stateless_scope


def call_with_values(fn, mapping, variables=()):
    """Calls `fn()` with each variable of `mapping` read as its mapped value.

    Assignments made inside `fn` to any of `variables` (range trackers,
    dropout seeds) are applied after the call rather than lost in the
    `keras.StatelessScope`.

    Inside another `StatelessScope` (a JAX training step runs in one, holding
    every variable's value while the variables themselves are empty), a
    nested scope does not read through to the outer one: the other
    `variables` are then mapped to their values in the outer scope, and
    what `fn` assigns to them is assigned back into it.

    Args:
        fn: Zero-argument callable.
        mapping: List of ``(variable, value)`` pairs.
        variables: Variables `fn` reads or updates besides the mapped ones.

    Returns:
        What `fn` returns.

    Example:

    >>> v, w = keras.Variable(1.0), keras.Variable(3.0)
    >>> float(call_with_values(lambda: v.value * w.value, [(v, 5.0)], [v, w]))
    15.0
    """
    mapped = {id(variable) for variable, _ in mapping}
    others = [variable for variable in variables if id(variable) not in mapped]
    outer = get_stateless_scope()
    current = []
    if outer is not None:
        current = [(variable, outer.get_current_value(variable)) for variable in others]
        current = [(variable, value) for variable, value in current if value is not None]
    with keras.StatelessScope(state_mapping=list(mapping) + current) as scope:
        before = {id(variable): scope.get_current_value(variable) for variable, _ in current}
        result = fn()
    for variable in others:
        updated = scope.get_current_value(variable)
        if updated is not None and updated is not before.get(id(variable)):
            variable.assign(updated)
    return result
