"""Keras 3 model -> ONNX `ModelProto`, through a `tf.function` and tf2onnx.

Internal to `to_onnx`. `tf2onnx.convert.from_keras` only understands `tf_keras`
models, so the model is traced as ``model(inputs, training=False)`` in a
`tf.function` with a static signature and converted with
`tf2onnx.convert.from_function`'s steps; Keras variables are frozen into
constants, and the Min / Max of a broadcast constant are taken before the
broadcast (`_onnx_broadcast`), so they fold with a dynamic batch too.
tf2onnx logs the ops it cannot convert and leaves them in the graph: they are
collected and raised as one error instead.
"""

import contextlib
import logging

import tensorflow as tf

from kcompress._errors import expected_error
from kcompress.quantization import quantizers
from tflite_export._onnx_broadcast import reduce_before_broadcast
from tflite_export._onnx_signature import output_names


def convert_with_tf2onnx(model, signature, opset):
    """Returns the ONNX `ModelProto` and the output names in Keras' flat order.

    Raises if any op is left outside the default ONNX domain (tf2onnx could
    not convert it), naming the ops and tf2onnx's reasons.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2, activation="relu")])
    >>> proto, names = convert_with_tf2onnx(model, tf.TensorSpec((1, 4), tf.float32, name="x"), opset=17)
    >>> names, [node.op_type for node in proto.graph.node]
    (['output'], ['MatMul', 'Relu'])
    """
    import onnx
    import tf2onnx

    names = []

    @tf.function
    def serve(inputs):
        outputs = model(inputs, training=False)
        names[:] = output_names(model, outputs)
        return dict(zip(names, tf.nest.flatten(outputs)))

    with _tf2onnx_errors() as reasons, _quiet_tensorflow(), quantizers.tracing_graph(), tf.device("/cpu:0"):
        # tf2onnx.convert.from_function's steps, with the Min / Max of broadcasts moved before them.
        concrete = serve.get_concrete_function(signature)
        inputs = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
        outputs = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
        frozen = tf2onnx.tf_loader.from_function(concrete, inputs, outputs)
        reduce_before_broadcast(frozen)
        model_proto, _ = tf2onnx.convert.from_graph_def(
            frozen,
            name=concrete.name,
            input_names=inputs,
            output_names=outputs,
            opset=opset,
            tensors_to_rename=tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs),
        )
    left = sorted(
        {
            node.op_type
            for node in model_proto.graph.node
            if node.domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type)
        }
    )
    if left:
        hint = ""
        if "Bitcast" in left:  # The exact-width arithmetic of a range kcompress computes from a constant.
            hint = (
                " (a constant a quantization wrapper rounds on its own range, such as keras-hub's position "
                "embedding, needs fixed non-batch dimensions: give input_signature with them, e.g. "
                "tf.TensorSpec((None, 128), tf.int32) per input)"
            )
        elif any(op.startswith("FakeQuant") for op in left):
            hint = (
                " (tf2onnx converts only per-tensor FakeQuantWithMinMaxVars/Args with num_bits=8, "
                "narrow_range=False, constant min <= 0 <= max)"
            )
        raise expected_error(
            f"a model made of ops tf2onnx can convert{hint}", unconverted_ops=left, tf2onnx_errors=reasons
        )
    return model_proto, list(names)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.reasons = []

    def emit(self, record):
        error = record.exc_info[1] if record.exc_info else None
        reason = str(error) if error is not None else record.getMessage().splitlines()[0]
        if reason not in self.reasons:
            self.reasons.append(reason)


@contextlib.contextmanager
def _tf2onnx_errors():
    """Collects tf2onnx's per-node conversion errors instead of printing their tracebacks."""
    logger = logging.getLogger("tf2onnx")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.reasons
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextlib.contextmanager
def _quiet_tensorflow():
    """Hides TensorFlow's warnings, such as the deprecation notices of the TF1 freezing tf2onnx calls."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
