"""The converter stage: Keras model -> `.tflite` (float16, dynamic, int8, 16x8) and ONNX.

`convert` writes the file, `verify` compares it with Keras (`compare_tensors`
tensor by tensor, for a QAT model and its int8 file), `benchmark` times
it on LiteRT, `check_edgetpu` says whether an Edge TPU can run it, `describe`
lists its ops and dtypes, and `to_onnx` exports to ONNX (QDQ for QAT models).
"""

from tflite_export.convert import MODES, Conversion, convert
from tflite_export.edgetpu import EdgeTPUReport, check_edgetpu
from tflite_export.inspect import TFLiteModel, describe
from tflite_export.latency import Latency, benchmark, compare
from tflite_export.onnx import OnnxExport, to_onnx
from tflite_export.tensors import TensorAgreement, TensorComparison, compare_tensors
from tflite_export.verify import Verification, verify

__all__ = [
    "MODES",
    "Conversion",
    "EdgeTPUReport",
    "Latency",
    "OnnxExport",
    "TFLiteModel",
    "TensorAgreement",
    "TensorComparison",
    "Verification",
    "benchmark",
    "check_edgetpu",
    "compare",
    "compare_tensors",
    "convert",
    "describe",
    "to_onnx",
    "verify",
]
