"""`ActivationQuantizer`: a tensor's int8 range, learnt while training."""

import contextlib
import threading

import keras
from keras import ops

from kcompress.quantization import config as config_lib
from kcompress.quantization import fake_quant

_state = threading.local()


@contextlib.contextmanager
def _flag(name):
    """Sets the thread-local flag `name` for the duration of the context."""
    previous = getattr(_state, name, False)
    setattr(_state, name, True)
    try:
        yield
    finally:
        setattr(_state, name, previous)


def calibrating():
    """Inside this context, inference calls also update activation ranges."""
    return _flag("calibrating")


def is_calibrating():
    return getattr(_state, "calibrating", False)


@contextlib.contextmanager
def exporting():
    """Inside this context, constants are left for the TFLite converter to quantize.

    The converter quantizes constant operands (a LayerNorm's scale) on
    their own range, as `fake_quant_constant` does in training; an explicit
    fake-quant op on a folded constant would not convert. Implies
    `tracing_graph`.
    """
    with _flag("exporting"), _flag("tracing_graph"):
        yield


def is_exporting():
    return getattr(_state, "exporting", False)


def tracing_graph():
    """Inside this context, inference calls build the plain graph a converter reads.

    Outside it, inference rounds as LiteRT's int8 kernels do where fake
    quantization alone would differ (a LayerNorm mean's ties, biases on
    their int32 grid); those extra ops mean nothing to a converter (ONNX,
    TFLite), which sees MEAN and the float bias and rounds them itself.
    """
    return _flag("tracing_graph")


def is_tracing_graph():
    return getattr(_state, "tracing_graph", False)


@contextlib.contextmanager
def leaving_float(select):
    """Inside this context, inference calls of the quantizers `select` picks return their input as is.

    For an error budget: how much of a QAT model's distance from the float
    model one group of tensors carries (see
    ``benchmarks/int8_error_budget.py``). Training and calibrating calls
    are unchanged, and a graph traced inside the context keeps the choice.

    Args:
        select: A function of an `ActivationQuantizer` (its ``name`` says
            which tensor it writes) returning True to leave it float.

    Example:

    >>> import numpy as np
    >>> quantizer = ActivationQuantizer(fixed_range=(0.0, 1.0), name="probabilities")
    >>> with leaving_float(lambda q: q.name == "probabilities"):
    ...     y = quantizer(np.array([0.3]))
    >>> round(float(np.asarray(y)[0]), 6), round(float(np.asarray(quantizer(np.array([0.3])))[0]), 6)
    (0.3, 0.301961)
    """
    previous = getattr(_state, "leave_float", ())
    _state.leave_float = (*previous, select)
    try:
        yield
    finally:
        _state.leave_float = previous


def _left_float(quantizer, training):
    selects = getattr(_state, "leave_float", ())
    return bool(selects) and not (training or is_calibrating()) and any(s(quantizer) for s in selects)


def emulates_kernels(training):
    """Whether a call with this `training` flag rounds as the int8 kernels do (inference only)."""
    return not (training or is_calibrating() or is_tracing_graph())


@keras.saving.register_keras_serializable(package="kcompress")
class ActivationQuantizer(keras.layers.Layer):
    """Fake-quantizes a tensor on a range tracked by moving averages.

    In training calls (and inside `calibrating()`), the range follows the
    batch minimum and maximum with an exponential moving average (the first
    batch sets it). In inference calls the range is frozen. With
    ``fixed_range`` the range never moves (a softmax output is always in
    [0, 1)). The output is marked so that the next quantized layer does not
    quantize it again.

    Args:
        config: A `QuantizationConfig` (its `activation_bits` and `ema_decay`
            are used).
        fixed_range: Optional ``(min, max)`` used instead of a learnt range.
        symmetric: Use a range centred on zero (zero point 0): ``[-m, m)``
            with ``m`` the larger of the learnt ``-min`` and ``max``. The
            second operand of an int8 matrix product needs it for XNNPACK
            (LiteRT's CPU delegate) to run the product; TensorRT needs it
            for every activation (`QuantizationConfig.symmetric_activations`
            turns it on for all of them).
        **kwargs: Base layer arguments.

    Example:

    >>> import numpy as np
    >>> quantizer = ActivationQuantizer()
    >>> y = quantizer(np.linspace(-1, 1, 5), training=True)
    >>> [round(float(v), 3) for v in (quantizer.range_min, quantizer.range_max)]
    [-1.0, 1.0]
    """

    def __init__(self, config=None, fixed_range=None, symmetric=False, **kwargs):
        # Ranges and rounding in float32 under any policy (mixed_bfloat16, mixed_float16): a
        # 256-level grid is not exact in a 16-bit float.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.config = config_lib.get(config)
        self.fixed_range = tuple(float(v) for v in fixed_range) if fixed_range is not None else None
        self.symmetric = bool(symmetric)

    def build(self, input_shape=None):
        if self.fixed_range is None:
            self.range_min = self.add_weight(
                name="range_min", shape=(), initializer="zeros", trainable=False, aggregation="mean"
            )
            self.range_max = self.add_weight(
                name="range_max", shape=(), initializer="zeros", trainable=False, aggregation="mean"
            )
            self.initialized = self.add_weight(
                name="initialized", shape=(), initializer="zeros", trainable=False, aggregation="mean"
            )
        self.built = True

    def current_range(self):
        """The ``(min, max)`` range as tensors."""
        if self.fixed_range is not None:
            return self.fixed_range
        return self._grid_range(self.range_min.value, self.range_max.value)

    def _grid_range(self, low, high):
        """The range a learnt ``(low, high)`` gives: itself, or centred on zero for a symmetric grid."""
        if self.symmetric or self.config.symmetric_activations:
            return fake_quant.symmetric_range(ops.maximum(-low, high), self.config.activation_bits)
        return low, high

    def update_range(self, x):
        """Moves the range towards the batch range of `x`; returns the new ``(min, max)``."""
        x = ops.stop_gradient(ops.cast(x, "float32"))
        batch_min = ops.minimum(ops.min(x), 0.0)
        batch_max = ops.maximum(ops.max(x), 0.0)
        # `initialized` is 0 or 1: the first batch sets the range, keeping nothing of the zeros it starts from.
        keep = self.config.ema_decay * self.initialized.value
        low = batch_min + keep * (self.range_min.value - batch_min)
        high = batch_max + keep * (self.range_max.value - batch_max)
        self.range_min.assign(low)
        self.range_max.assign(high)
        self.initialized.assign(1.0)
        return low, high

    def reset_range(self):
        """Forgets the learnt range: the next training or calibrating call sets it from its batch."""
        if self.fixed_range is None:
            self.initialized.assign(0.0)

    def observe(self, x, training=None):
        """Updates the range from `x` as a training (or calibrating) call does, without quantizing."""
        if self.fixed_range is None and (training or is_calibrating()):
            self.update_range(x)

    def call(self, x, training=None):
        x = ops.cast(x, "float32")
        if _left_float(self, training):
            return fake_quant.mark(x, self)
        bits = self.config.activation_bits
        if self.fixed_range is None and (training or is_calibrating()):
            # Quantize on the range just computed, without the end rounding of `fake_quant_range`
            # (at most 2^-21 of the range, which only the converter needs): a training step runs
            # these scalar ops for every quantized tensor.
            low, high = self._grid_range(*self.update_range(x))
            y = fake_quant.fake_quant_training(x, low, high, bits)
        else:
            low, high = self.current_range()
            y = fake_quant.fake_quant_range(x, low, high, bits)
        return fake_quant.mark(y, self)

    def apply(self, x):
        """Fake-quantizes `x` on the current range without updating it."""
        if _left_float(self, False):
            return fake_quant.mark(ops.convert_to_tensor(x, "float32"), self)
        low, high = self.current_range()
        return fake_quant.mark(fake_quant.fake_quant_range(x, low, high, self.config.activation_bits), self)

    def compute_output_spec(self, x, training=None):
        return keras.KerasTensor(x.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "config": keras.saving.serialize_keras_object(self.config),
                "fixed_range": list(self.fixed_range) if self.fixed_range is not None else None,
                "symmetric": self.symmetric,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["config"] = config_lib.get(config["config"])
        return cls(**config)
