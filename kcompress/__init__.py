"""kcompress: Keras 3 native pruning, quantization, distillation, structured pruning and clustering.

Subpackages load on first use (``kcompress.pruning``, ``from kcompress import
quantization``), so ``import kcompress`` and the ``kcompress`` command start
without importing TensorFlow. Still, after ``import kcompress`` alone,
`keras.models.load_model` reads every `.keras` file kcompress writes (models
under pruning, QAT or clustering, structurally pruned models, a `Distiller`):
see `kcompress._registration`.
"""

import importlib

from kcompress import _registration

__version__ = "0.1.0"

_SUBPACKAGES = (
    "clustering",
    "data",
    "distillation",
    "distribution",
    "pipeline",
    "pruning",
    "quantization",
    "structured",
)

__all__ = [*_SUBPACKAGES, "__version__"]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kcompress.{name}")
    raise AttributeError(f"module 'kcompress' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


_registration.install()
