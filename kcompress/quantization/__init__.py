"""Quantization-aware training for Keras 3 models, exportable to int8 TFLite."""

from kcompress.quantization.affine import QuantizeAffine
from kcompress.quantization.api import (
    calibrate,
    encoder_wrappers,
    quantization_wrappers,
    quantize_model,
    strip_quantization,
)
from kcompress.quantization.attention import QuantizeAttention
from kcompress.quantization.base import QuantizeBase
from kcompress.quantization.config import QuantizationConfig
from kcompress.quantization.conv_batch_norm import QuantizeConvBatchNorm
from kcompress.quantization.embedding import QuantizeEmbedding
from kcompress.quantization.encoder import QuantizeTransformerEncoder
from kcompress.quantization.folding import FoldedLayer
from kcompress.quantization.kernel import QuantizeKernel, QuantizeSeparableConv
from kcompress.quantization.layer_norm import QuantizeLayerNorm
from kcompress.quantization.operation import QuantizeOperation
from kcompress.quantization.output import QuantizeOutput
from kcompress.quantization.quantizers import ActivationQuantizer

__all__ = [
    "ActivationQuantizer",
    "FoldedLayer",
    "QuantizationConfig",
    "QuantizeAffine",
    "QuantizeAttention",
    "QuantizeBase",
    "QuantizeConvBatchNorm",
    "QuantizeEmbedding",
    "QuantizeKernel",
    "QuantizeLayerNorm",
    "QuantizeOperation",
    "QuantizeOutput",
    "QuantizeSeparableConv",
    "QuantizeTransformerEncoder",
    "calibrate",
    "encoder_wrappers",
    "quantization_wrappers",
    "quantize_model",
    "strip_quantization",
]
