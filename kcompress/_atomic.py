"""Atomic file writes: a user's file is either the old one or the new one."""

import os
import tempfile


def write_atomic(path, write):
    """Calls ``write(file)`` on a temporary file, then renames it to `path`.

    If `write` raises, the temporary file is removed and `path` is untouched.

    Args:
        path: Destination file; its directory must exist.
        write: Callable taking a binary file object.

    Example:

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> write_atomic(target, lambda f: f.write(b"abc"))
    >>> target.read_bytes()
    b'abc'
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
