"""What the terminal sees: progress lines, and no TensorFlow native log noise.

TensorFlow 2.21 writes C++ log lines (oneDNN, CUDA, converter notes) to file
descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says. `quiet` points fd 2 at
``/dev/null`` around imports and library calls, so the CLI's stderr holds
only its own messages; ``KCOMPRESS_DEBUG=1`` turns this off.
"""

import contextlib
import os
import sys
import warnings

from kcompress.cli._errors import debugging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def quiet():
    """Silences native stderr output and Python warnings inside the block.

    Example:

    >>> with quiet():
    ...     os.write(2, b"native noise")
    12
    """
    if debugging():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(sink, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(sink)


class Steps:
    """Numbered progress lines, ``[i/total] text``, printed at once.

    Example:

    >>> steps = Steps(2)
    >>> steps("loading m.keras")
    [1/2] loading m.keras
    >>> steps("converting")
    [2/2] converting
    """

    def __init__(self, total):
        self.total = total
        self.done = 0

    def __call__(self, text):
        self.done += 1
        print(f"[{self.done}/{self.total}] {text}", flush=True)
