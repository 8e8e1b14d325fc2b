"""kcompress: Keras 3 native pruning, quantization, distillation, structured pruning and clustering."""

from kcompress import clustering, distillation, pruning, quantization, structured

__version__ = "0.1.0"

__all__ = ["clustering", "distillation", "pruning", "quantization", "structured", "__version__"]
