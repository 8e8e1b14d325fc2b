"""Keras 3 model -> ONNX (through tf2onnx), checked against onnxruntime.

`tf2onnx.convert.from_keras` only understands `tf_keras` models, so `to_onnx`
traces ``model(inputs, training=False)`` in a `tf.function` with a static
signature (`tflite_export._signature`: ``model.inputs``, an ``input_signature`` or the check data) and converts it with
`tf2onnx.convert.from_function`; Keras variables are frozen into constants.

Quantization-aware models: every per-tensor
`tf.quantization.fake_quant_with_min_max_vars` (8 bits, ``narrow_range=False``,
``min <= 0 <= max``) becomes a QuantizeLinear -> DequantizeLinear pair. tf2onnx
writes them as uint8; `to_onnx` rewrites them to the equivalent int8 pairs
(zero point - 128, same numbers), the explicit-quantization form TensorRT reads.
The kernels of kcompress quantization wrappers become int8 initializers ->
DequantizeLinear on the wrapper's own grid (symmetric, per output channel), and
every activation a Gemm, MatMul or Conv reads comes out of a DequantizeLinear
(the pair is written again after ops that only move values, such as Reshape).

`to_onnx` runs the steps, each in its own internal module: the graph signature
(`_onnx_signature`), the tf2onnx conversion (`_onnx_convert`), the Q/DQ rewrites
(`_onnx_qdq`, with the weight grids of `_onnx_weights` and the product inputs of
`_onnx_activations`) and the onnxruntime parity check (`_onnx_parity`).
"""

import collections
import dataclasses

import numpy as np
import tensorflow as tf

from kcompress._errors import check_int, expected_error
from tflite_export._files import output_path, write_bytes_atomic
from tflite_export._onnx_activations import float_inputs, requantize_product_inputs
from tflite_export._onnx_convert import convert_with_tf2onnx
from tflite_export._onnx_parity import check_arrays, max_abs_diff, random_inputs
from tflite_export._onnx_qdq import count_qdq_pairs, int8_activations, quantize_weights
from tflite_export._onnx_signature import name_batch_axis
from tflite_export._onnx_signature import signature as graph_signature
from tflite_export._onnx_weights import kernel_grids

MIN_OPSET = 13  # First opset with per-channel DequantizeLinear; TensorRT's minimum for QDQ.
MAX_OPSET = 18  # Newest opset tf2onnx 1.17 knows.


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """What `to_onnx` wrote and how well onnxruntime agrees with Keras.

    Attributes:
        path: The `.onnx` file.
        size_bytes: Its size.
        opset: The ONNX opset (default domain).
        inputs: ``(name, shape, dtype)`` per graph input; `None` marks a dynamic dimension.
        outputs: ``(name, shape, dtype)`` per graph output.
        op_counts: Node count per ONNX op type, most frequent first.
        max_abs_diff: Largest ``|keras - onnxruntime|`` over all outputs on the check data.
        qdq_pairs: QuantizeLinear -> DequantizeLinear pairs (quantized activations);
            `weight_dequantizers` counts the int8 weight -> DequantizeLinear ones.
        float_inputs: Gemm / MatMul / Conv inputs (tensor names) that no
            DequantizeLinear produces: TensorRT runs those products in float.
            Empty when every product is quantized (a model from
            `kcompress.quantization.quantize_model`).
    """

    path: str
    size_bytes: int
    opset: int
    inputs: tuple
    outputs: tuple
    op_counts: dict
    max_abs_diff: float
    qdq_pairs: int
    float_inputs: tuple = ()

    @property
    def weight_dequantizers(self):
        """DequantizeLinear nodes fed by int8 initializers (per-channel weights)."""
        return self.op_counts.get("DequantizeLinear", 0) - self.qdq_pairs

    def __str__(self):
        def tensors(items):
            return ", ".join(
                f"{name} {dtype}[{', '.join('?' if d is None else str(d) for d in shape)}]"
                for name, shape, dtype in items
            )

        ops = ", ".join(f"{op} {count}" for op, count in self.op_counts.items())
        return "\n".join(
            [
                f"ONNX model {self.path} ({self.size_bytes:,} bytes, opset {self.opset})",
                f"  inputs:        {tensors(self.inputs)}",
                f"  outputs:       {tensors(self.outputs)}",
                f"  ops:           {ops}",
                f"  QDQ pairs:     {self.qdq_pairs} activations, {self.weight_dequantizers} weights"
                f" ({len(self.float_inputs)} Gemm/MatMul/Conv inputs left float)",
                f"  max abs diff:  {self.max_abs_diff:.3g} (Keras vs onnxruntime)",
            ]
        )


def to_onnx(
    model,
    path,
    input_signature=None,
    opset=17,
    check_data=None,
    batch_size=None,
    quantize_weights_per_channel=None,
):
    """Exports a Keras 3 model to ONNX and checks it with onnxruntime.

    The graph is ``model(inputs, training=False)``. Its inputs are named after
    the model's inputs (dict keys for dict-input models such as keras-hub's
    ``{"token_ids", "segment_ids", "padding_mask"}``) and its outputs after
    ``model.output_names`` (``"output"`` when the model has none). The file is
    written atomically, then onnxruntime (CPU, basic graph optimizations only:
    the extended ones swap in approximate int8 kernels) runs it on `check_data`
    and the largest difference to Keras is reported.

    Fake-quant ops (`tf.quantization.fake_quant_with_min_max_vars`, 8 bits,
    ``narrow_range=False``, constant per-tensor ``min <= 0 <= max``) become int8
    QuantizeLinear -> DequantizeLinear pairs. They agree with TensorFlow to one
    quantization step ``(max - min) / 255``: values exactly half-way between two
    steps round up in TensorFlow and to even in ONNX. Ops tf2onnx cannot
    convert (other fake-quant flavours among them) raise before anything is
    written. For a model from `kcompress.quantization.quantize_model` the graph
    is what TensorRT runs in int8: every Gemm / MatMul / Conv reads
    DequantizeLinear outputs only (`OnnxExport.float_inputs` lists any that
    do not), its weights int8 initializers on the QAT kernel grid.

    Args:
        model: A built Keras 3 model (Sequential, functional, subclassed, keras-hub).
        path: Where to write, ending in ``.onnx``; its directory must exist.
        input_signature: A `tf.TensorSpec` or `keras.InputSpec`, or a list /
            dict of them, matching what ``model(...)`` takes (as
            `tflite_export.convert` takes it). Defaults to ``model.inputs`` with
            the batch dimension set to `batch_size`; a subclassed model without
            ``inputs`` needs this or `check_data` (whose shapes and dtypes are
            then used), else a `ValueError` says so.
        opset: ONNX opset, 13 to 18.
        check_data: Inputs for the parity check: an array, or a list / dict of
            arrays shaped like the model inputs with any number of rows. `None`
            draws random inputs: normal floats, integers in {0, 1}, ones for
            integer inputs whose name contains ``"mask"``, 8 for unknown sizes.
        batch_size: `None` (the default) for a dynamic batch dimension, named
            ``"batch"`` in every input and output, or a static size. Check
            data is fed in chunks of this size (all at once when dynamic).
        quantize_weights_per_channel: Store the 2-D MatMul / Gemm weights and
            Conv kernels as int8 -> DequantizeLinear (symmetric, zero point
            0). A kernel a kcompress quantization wrapper rounds keeps that
            wrapper's grid exactly (its steps, per output channel or per
            tensor as its `QuantizationConfig` says); with `True` any other
            float weight is rounded to ``max|w| / 127`` per output channel.
            `None` (the default) stores the wrappers' kernels only, so a model
            without wrappers keeps float weights; `False` stores none.

    Returns:
        An `OnnxExport`.

    Example:

    >>> import os, tempfile, keras
    >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> result = to_onnx(model, os.path.join(tempfile.mkdtemp(), "model.onnx"))
    >>> result.inputs, result.outputs
    ((('x', (None, 4), 'float32'),), (('output', (None, 2), 'float32'),))
    >>> result.max_abs_diff < 1e-5
    True
    """
    path = output_path(path, suffix=".onnx")
    opset = check_int("opset", opset, minimum=MIN_OPSET)
    if opset > MAX_OPSET:
        raise expected_error(f"opset <= {MAX_OPSET} (the newest tf2onnx supports)", opset=opset)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if quantize_weights_per_channel not in (None, True, False):
        raise expected_error(
            "quantize_weights_per_channel to be None, True or False",
            quantize_weights_per_channel=quantize_weights_per_channel,
        )
    signature = graph_signature(model, input_signature, check_data, batch_size)
    specs = tf.nest.flatten(signature)
    if check_data is None:
        arrays = random_inputs(specs)
    else:
        arrays = check_arrays(signature, check_data)

    model_proto, output_names = convert_with_tf2onnx(model, signature, opset)
    graph = model_proto.graph
    int8_activations(graph)
    if quantize_weights_per_channel is None or quantize_weights_per_channel:
        quantize_weights(graph, kernel_grids(model), round_others=bool(quantize_weights_per_channel))
    requantize_product_inputs(graph)
    if batch_size is None:
        name_batch_axis(graph)
    import onnx

    onnx.checker.check_model(model_proto)
    data = model_proto.SerializeToString()
    size = write_bytes_atomic(path, data)

    diff = max_abs_diff(model, data, signature, arrays, output_names)
    ops = collections.Counter(node.op_type for node in model_proto.graph.node)
    return OnnxExport(
        path=str(path),
        size_bytes=size,
        opset=opset,
        inputs=tuple(_tensor_info(v) for v in model_proto.graph.input),
        outputs=tuple(_tensor_info(v) for v in model_proto.graph.output),
        op_counts=dict(sorted(ops.items(), key=lambda item: (-item[1], item[0]))),
        max_abs_diff=diff,
        qdq_pairs=count_qdq_pairs(graph),
        float_inputs=tuple(float_inputs(graph)),
    )


def _tensor_info(value_info):
    """``(name, shape, dtype)`` of a graph input or output; `None` marks a dynamic dimension."""
    from onnx import helper

    tensor_type = value_info.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    return value_info.name, shape, dtype
