"""kcompress: Keras 3 native pruning, quantization and distillation."""

from kcompress import clustering, distillation, pruning, quantization

__version__ = "0.1.0"

__all__ = ["clustering", "distillation", "pruning", "quantization", "__version__"]
