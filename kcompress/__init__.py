"""kcompress: Keras 3 native pruning, quantization and distillation."""

from kcompress import distillation, pruning, quantization

__version__ = "0.1.0"

__all__ = ["distillation", "pruning", "quantization", "__version__"]
