"""`QuantizeOperation`: a range for the output of a Keras op in a functional graph (``x + 3.0``)."""

import functools

import keras

from kcompress._errors import expected_error
from kcompress.quantization import config as config_lib
from kcompress.quantization import quantizers


@keras.saving.register_keras_serializable(package="kcompress")
class QuantizeOperation(keras.layers.Layer):
    """Runs a stateless Keras operation of a functional graph and quantizes its output.

    A functional model written with ops (``keras.ops.relu6(x + 3.0) *
    (1 / 6)``, MobileNetV3's hard-sigmoid) has tensors no layer produces;
    the int8 graph needs a range for each (ADD, MUL, ...). `quantize_model`
    puts one of these in place of each arithmetic op (`registry.OPERATIONS`);
    `strip_quantization` puts the op back (`unquantized`).

    Args:
        operation: The `keras.Operation` (e.g. the ``Add`` of ``x + 3.0``).
        config: A `QuantizationConfig`.
        **kwargs: Base layer arguments.

    Example:

    >>> import numpy as np
    >>> layer = QuantizeOperation(keras.src.ops.numpy.Add())
    >>> y = layer(np.array([0.0, 2.0], "float32"), 3.0, training=True)
    >>> [round(float(v), 3) for v in layer.quantizers["output"].current_range()]
    [0.0, 5.0]
    """

    def __init__(self, operation, config=None, **kwargs):
        if not isinstance(operation, keras.Operation) or isinstance(operation, keras.layers.Layer):
            raise expected_error("a stateless keras.Operation (not a layer)", operation=operation)
        kwargs.setdefault("name", f"quant_{operation.name}")
        super().__init__(**kwargs)
        self.operation = operation
        self.config = config_lib.get(config)
        self.output_quantizer = quantizers.ActivationQuantizer(self.config, name=f"{self.name}_output")

    @property
    def quantizers(self):
        """Role -> `ActivationQuantizer` (one: ``"output"``)."""
        return {"output": self.output_quantizer}

    def build(self, *args, **kwargs):
        if not self.output_quantizer.built:
            self.output_quantizer.build()
        self.built = True

    def __call__(self, *args, **kwargs):
        # Keras layers take only tensors as positional arguments: the op's others (the 3.0 of
        # ``x + 3.0``) go in `template`, a keyword argument the functional config saves.
        if "template" in kwargs:
            return super().__call__(*args, **kwargs)
        tensors = [a for a in args if _is_tensor(a)]
        template = [None if _is_tensor(a) else a for a in args]
        return super().__call__(tensors, template=template, **kwargs)

    def call(self, tensors, template=None, training=None, **kwargs):
        return self.output_quantizer(_run(self.operation, tensors, template, **kwargs), training=training)

    def compute_output_spec(self, tensors, template=None, training=None, **kwargs):
        return self.operation.compute_output_spec(*_fill(template, tensors), **kwargs)

    def unquantized(self):
        """A callable that runs the operation alone, taking this layer's call arguments (for stripping)."""
        return functools.partial(_run, self.operation)

    def quantized_weights(self, compiled=False):
        """No weights: ``[]`` (as the layer wrappers' method, for stripping)."""
        return []

    def get_config(self):
        config = super().get_config()
        config["operation"] = keras.saving.serialize_keras_object(self.operation)
        config["config"] = keras.saving.serialize_keras_object(self.config)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["operation"] = keras.saving.deserialize_keras_object(config["operation"])
        config["config"] = config_lib.get(config["config"])
        return cls(**config)


def _is_tensor(value):
    return isinstance(value, keras.KerasTensor) or keras.ops.is_tensor(value) or hasattr(value, "__array__")


def _run(operation, tensors, template=None, **kwargs):
    return operation(*_fill(template, tensors), **kwargs)


def _fill(template, tensors):
    """The op's positional arguments: `template` with its None slots taken by `tensors` in order."""
    tensors = iter(tensors)
    return [next(tensors) if value is None else value for value in template]
