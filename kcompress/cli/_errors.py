"""The two ways a command fails, and how each is shown: one line, an exit code.

- `UsageError` (exit code 2): the command line is wrong: an unknown command
  or flag, a bad flag value, a missing or unreadable input file, an invalid
  config. Found before any long work starts.
- Any other exception while the command runs (exit code 1): the input was
  well-formed but the work failed, e.g. ``convert`` raising
  ``ValueError("Expected a model that converts to full int8. ...")``.

Either way the user sees ``kcompress <command>: <message>`` on one line of
stderr, never a traceback; ``KCOMPRESS_DEBUG=1`` adds the traceback.
"""

import os
import sys
import traceback

USAGE_EXIT_CODE = 2
FAILURE_EXIT_CODE = 1
INTERRUPTED_EXIT_CODE = 130


class UsageError(Exception):
    """A wrong command line: shown as one line, exit code 2."""


def one_line(text):
    """Collapses a (possibly multi-line) message to one line.

    Example:

    >>> one_line("Expected a file.\\n  Received: path='x'")
    "Expected a file. Received: path='x'"
    """
    return " ".join(str(text).split())


def debugging():
    """True if ``KCOMPRESS_DEBUG`` asks for tracebacks and unfiltered native logs."""
    return os.environ.get("KCOMPRESS_DEBUG", "") not in ("", "0")


def report(prog, error):
    """Prints `error` as ``<prog>: <message>`` on stderr; returns the exit code."""
    if isinstance(error, UsageError):
        message, code = one_line(error), USAGE_EXIT_CODE
    elif isinstance(error, KeyboardInterrupt):
        message, code = "interrupted", INTERRUPTED_EXIT_CODE
    elif isinstance(error, ValueError):
        message, code = one_line(error), FAILURE_EXIT_CODE
    else:
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        hint = "" if debugging() else " (set KCOMPRESS_DEBUG=1 to see the traceback)"
        message, code = f"{type(error).__name__}: {one_line(first)}{hint}", FAILURE_EXIT_CODE
    if debugging() and not isinstance(error, UsageError):
        traceback.print_exception(error, file=sys.stderr)
    sys.stdout.flush()
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
    return code
