"""What ``demo`` and ``compress`` share: importing `kcompress.pipeline` lazily, showing its result."""

import importlib

from kcompress.cli._output import quiet

_MODULE = "kcompress.pipeline"


def load():
    """Imports `kcompress.pipeline` (TensorFlow and all) only when a pipeline command runs.

    Raises:
        RuntimeError: This install has no `kcompress.pipeline`.
    """
    try:
        with quiet():
            return importlib.import_module(_MODULE)
    except ModuleNotFoundError as error:
        if error.name != _MODULE:
            raise
        raise RuntimeError(f"{_MODULE} is not part of this kcompress install") from None


def show(result):
    """Prints the pipeline's report table, then where its outputs are."""
    print(result.table)
    print()
    print(f".tflite:    {result.tflite_path}")
    print(f"report.md:  {result.report_md}")
    print(f"report.png: {result.report_png}", flush=True)
