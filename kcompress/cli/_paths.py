"""Checks on the files a command reads and writes, done before any long work."""

import os

from kcompress._errors import expected_error
from kcompress.cli._errors import UsageError

_TFLITE_IDENTIFIER = b"TFL3"


def existing_file(flag, path, suffixes=None):
    """Returns `path` if it is a file (with one of `suffixes`); else raises `UsageError`.

    Example:

    >>> existing_file("--model", "/no/such/m.keras")
    Traceback (most recent call last):
    ...
    kcompress.cli._errors.UsageError: Expected --model to be an existing file. Received: --model='/no/such/m.keras'
    """
    if not os.path.isfile(path):
        what = "a file, not a directory" if os.path.isdir(path) else "an existing file"
        raise UsageError(str(expected_error(f"{flag} to be {what}", **{flag: path})))
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise UsageError(str(expected_error(f"{flag} to be a {' or '.join(suffixes)} file", **{flag: path})))
    return path


def tflite_file(flag, path):
    """Returns `path` if it is a `.tflite` flatbuffer (``TFL3`` identifier); else raises `UsageError`."""
    existing_file(flag, path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != _TFLITE_IDENTIFIER:
        raise UsageError(
            str(expected_error(f"{flag} to be a .tflite model (flatbuffer identifier TFL3)", **{flag: path}))
        )
    return path


def output_file(flag, path):
    """Returns `path` if a file can be written there: its directory exists, it is not a directory."""
    if os.path.isdir(path):
        raise UsageError(str(expected_error(f"{flag} to be a file path, not a directory", **{flag: path})))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(str(expected_error(f"{flag} in an existing directory", **{flag: path})))
    return path


def output_dir(flag, path):
    """Returns `path` if it is a directory or does not exist yet (it may be a run to resume)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(
            str(expected_error(f"{flag} to be a directory (an existing file is in the way)", **{flag: path}))
        )
    return path
