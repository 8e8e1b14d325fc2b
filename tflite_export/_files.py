"""Atomic file writes: a user's file is either the old one or the new one."""

import os
from pathlib import Path

from kcompress._atomic import write_atomic
from kcompress._errors import expected_error


def output_path(path, suffix=None):
    """Returns `path` as a `Path`; raises if its directory does not exist.

    Example:

    >>> output_path("/no/such/dir/model.tflite")
    Traceback (most recent call last):
    ...
    ValueError: Expected a path in an existing directory. Received: path='/no/such/dir/model.tflite'
    """
    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise expected_error("a path in an existing directory", path=str(path))
    if path.is_dir():
        raise expected_error("a file path, not a directory", path=str(path))
    if suffix is not None and path.suffix != suffix:
        raise expected_error(f"a path ending in '{suffix}'", path=str(path))
    return path


def write_bytes_atomic(path, data):
    """Writes `data` to `path` through a temporary file and a rename.

    Example:

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> write_bytes_atomic(target, b"abc")
    3
    >>> target.read_bytes()
    b'abc'
    """
    path = output_path(path)
    write_atomic(path, lambda f: f.write(data))
    return len(data)
