"""Checks on the files a command reads and writes, done before any long work."""

import os
import zipfile

from kcompress._errors import expected_error
from kcompress.cli._errors import UsageError
from kcompress.cli._output import quiet

_TFLITE_IDENTIFIER = b"TFL3"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
    """Returns `path` if it is a `.tflite` flatbuffer LiteRT can read; else raises `UsageError`.

    A file cut short keeps its ``TFL3`` identifier: the flatbuffer is
    checked by building (not allocating) a LiteRT interpreter on it.
    """
    existing_file(flag, path)
    with open(path, "rb") as f:
        head = f.read(8)
    readable = head[4:8] == _TFLITE_IDENTIFIER
    if readable:
        with quiet():
            from ai_edge_litert.interpreter import Interpreter

            try:
                Interpreter(model_path=path)
            except ValueError:  # "The model is not a valid Flatbuffer buffer"
                readable = False
    if not readable:
        raise UsageError(
            f"{expected_error(f'{flag} to be a .tflite model (a TFLite flatbuffer)', **{flag: path})}, "
            f"which is {what_file_is(path)}"
        )
    return path


def keras_file(flag, path, suffixes=(".keras", ".h5")):
    """Returns `path` if it is a ``.keras`` zip archive (or an HDF5 ``.h5``); else raises `UsageError`.

    Only the container is checked, before the slow load: the load itself
    reports a model it cannot rebuild.
    """
    existing_file(flag, path, suffixes=suffixes)
    if path.lower().endswith(".h5"):
        readable = _is_hdf5(path)
        expected = "an HDF5 .h5 file"
    else:
        readable = zipfile.is_zipfile(path) and _has_config(path)
        expected = "a .keras zip archive"
    if not readable:
        raise UsageError(
            f"{expected_error(f'{flag} to be a Keras model file ({expected})', **{flag: path})}, "
            f"which is {what_file_is(path)}"
        )
    return path


def what_file_is(path):
    """A few words on what a file holds, for errors about a file of the wrong kind.

    Example:

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".tflite", delete=False) as f:
    ...     _ = f.write("hello")
    >>> what_file_is(f.name)
    'a text file of 5 bytes'
    """
    size = os.path.getsize(path)
    if size == 0:
        return "an empty file"
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[4:8] == _TFLITE_IDENTIFIER:
        return f"a TFLite flatbuffer of {size:,} bytes that is cut short or damaged"
    if zipfile.is_zipfile(path):
        if _has_config(path):
            return f"a zip archive of {size:,} bytes with a config.json (a .keras model?)"
        return f"a zip archive of {size:,} bytes with no config.json"
    if _is_hdf5(path):
        return f"an HDF5 file of {size:,} bytes (a .h5 model?)"
    if _is_text(head):
        return f"a text file of {size:,} bytes"
    return f"{size:,} bytes of another format"


def _is_hdf5(path):
    """HDF5's signature sits at byte 0, 512, 1024, 2048, ... (after an optional user block)."""
    with open(path, "rb") as f:
        for offset in (0, 512, 1024, 2048, 4096):
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
    return False


def _has_config(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _is_text(head):
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # Not just a character cut by the 4 KiB read.
            return False
        text = head[: error.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n" for c in text)


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
