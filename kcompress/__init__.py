"""kcompress: Keras 3 native pruning, quantization, distillation, structured pruning and clustering.

Subpackages load on first use (``kcompress.pruning``, ``from kcompress import
quantization``), so ``import kcompress`` and the ``kcompress`` command start
without importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("clustering", "data", "distillation", "pipeline", "pruning", "quantization", "structured")

__all__ = [*_SUBPACKAGES, "__version__"]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kcompress.{name}")
    raise AttributeError(f"module 'kcompress' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
