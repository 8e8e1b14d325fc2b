"""One helper that formats user-input errors the way Keras does.

Keras reports bad arguments as ``Expected <what>. Received: <name>=<value>``.
Every check on user input in kcompress goes through :func:`expected_error`
so the messages read the same everywhere.
"""

import numbers


def expected_error(expectation, **received):
    """Returns a `ValueError` saying what was expected and what was received.

    Args:
        expectation: What a valid value looks like, e.g. ``"sparsity in [0, 1)"``.
        **received: The offending argument(s), by name.

    Returns:
        A `ValueError` ready to raise.

    Example:

    >>> str(expected_error("sparsity in [0, 1)", sparsity=1.2))
    'Expected sparsity in [0, 1). Received: sparsity=1.2'
    """
    shown = ", ".join(f"{name}={value!r}" for name, value in received.items())
    return ValueError(f"Expected {expectation}. Received: {shown}")


def check_fraction(name, value):
    """Raises unless ``0 <= value < 1``, the range of a sparsity or fraction.

    Example:

    >>> check_fraction("sparsity", 0.5)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise expected_error(f"{name} to be a number in [0, 1)", **{name: value})
    if not 0.0 <= value < 1.0:
        raise expected_error(f"{name} in [0, 1)", **{name: value})


def check_int(name, value, minimum):
    """Returns ``value`` as an `int`; raises unless it is an integer ``>= minimum``.

    NumPy integers count as integers (steps and sizes are often computed
    with NumPy); the result is a plain `int`, safe to put in a config.

    Example:

    >>> check_int("frequency", 100, minimum=1)
    100
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise expected_error(f"{name} to be an integer", **{name: value})
    if value < minimum:
        raise expected_error(f"{name} >= {minimum}", **{name: value})
    return int(value)
