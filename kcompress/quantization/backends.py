"""The few primitives quantization computes differently by Keras backend.

Under TensorFlow, activations go through TF's ``FakeQuantWithMinMaxVars``
op (the op the TFLite converter reads ranges from) and weights round in
one XLA-compiled function behind ``tf.grad_pass_through`` (a measured
speed win in training steps). Under any other backend (JAX), the same math
runs in `keras.ops`: `fake_quant_with_min_max_vars` reproduces TF's op
value for value and gradient for gradient. `primitives` is the one place
that chooses between the two.
"""

import contextlib

import keras
import numpy as np
from keras import ops


def primitives():
    """The primitives of the running Keras backend: TensorFlow's, JAX's, or plain `keras.ops` ones.

    Example:

    >>> names = {"tensorflow": "TensorFlowPrimitives", "jax": "JaxPrimitives"}
    >>> type(primitives()).__name__ == names.get(keras.backend.backend(), "KerasPrimitives")
    True
    """
    return _BY_BACKEND.get(keras.backend.backend(), _KERAS)


def straight_through(x, rounded):
    """`rounded` as a value, with the gradient of `x` (identity): a straight-through estimator.

    Written ``stop_gradient(rounded) + (x - stop_gradient(x))``: the value is
    `rounded` exactly (``x - x`` is 0), where ``x + stop_gradient(rounded -
    x)`` can be one float32 rounding away from it.

    Example:

    >>> import numpy as np
    >>> float(straight_through(np.float32(0.3), ops.round(np.float32(0.3))))
    0.0
    """
    x = ops.convert_to_tensor(x)
    return ops.stop_gradient(rounded) + (x - ops.stop_gradient(x))


def fake_quant_with_min_max_vars(x, minimum, maximum, num_bits=8):
    """TF's ``fake_quant_with_min_max_vars`` (``narrow_range=False``) in `keras.ops`, for any backend.

    The range is nudged as TF nudges it: the zero point becomes the
    integer level nearest ``-minimum / scale`` (halves away from zero), so
    that 0 is exactly on the grid, and `x` is clamped to the nudged range
    and rounded on its ``2^num_bits`` levels with TF's float32 operations in
    TF's order. Gradients are TF's: `x` passes through inside the nudged
    range (both ends included) and gets 0 outside; `minimum` and `maximum`
    get the summed gradient of the values below and above it. A range of
    exactly ``[0, 0]`` gives zeros and passes the whole gradient to `x`.

    Args:
        x: A float32 tensor.
        minimum: Scalar lower end of the range.
        maximum: Scalar upper end of the range.
        num_bits: Grid bits (2 to 16).

    Returns:
        The fake-quantized `x`, float32.

    Example:

    >>> round(float(fake_quant_with_min_max_vars(0.3, -1.0, 1.0)), 6)
    0.298039
    """
    x = ops.convert_to_tensor(x, "float32")
    minimum = ops.convert_to_tensor(minimum, "float32")
    maximum = ops.convert_to_tensor(maximum, "float32")
    # A [0, 0] range has no grid: give the nudging a harmless one and select zeros at the end.
    empty = ops.logical_and(ops.equal(minimum, 0.0), ops.equal(maximum, 0.0))
    safe_max = ops.where(empty, 1.0, maximum)
    scale, inverse, nudged_min, nudged_max = _nudged(ops.stop_gradient(minimum), ops.stop_gradient(safe_max), num_bits)
    # Exactly the nudged ends as values; the gradient of each goes to its (unnudged) end.
    low = nudged_min + (minimum - ops.stop_gradient(minimum))
    high = nudged_max + (safe_max - ops.stop_gradient(safe_max))
    # `where`, not `clip`: each value's gradient goes to exactly one of x, low, high (JAX's clip
    # splits it at a tie); a value on an end belongs to x, as in TF.
    clamped = ops.where(ops.less(x, low), low, ops.where(ops.greater(x, high), high, x))
    quant_zero = ops.floor(-nudged_min * inverse + 0.5)
    shifted = ops.stop_gradient(clamped - nudged_min)
    rounded = ops.floor(primitives().divide(shifted, scale) - quant_zero + 0.5) * scale
    y = straight_through(clamped, rounded)
    return ops.where(empty, straight_through(x, ops.zeros_like(x)), y)


def _nudged(minimum, maximum, num_bits):
    """``(scale, 1 / scale, nudged min, nudged max)`` of TF's ``Nudge``, in float32 as it computes them."""
    top = float(2**num_bits - 1)
    divide = primitives().divide
    scale = divide(maximum - minimum, top)
    inverse = divide(top, maximum - minimum)  # Not 1 / scale: TF computes it apart.
    zero_from_min = 0.0 - divide(minimum, scale)
    # std::round (halves away from zero) of a value >= 0, exactly: its floor, plus one from .5 up.
    whole = ops.floor(zero_from_min)
    rounded = whole + ops.cast(ops.greater_equal(zero_from_min - whole, 0.5), "float32")
    zero = ops.where(ops.less(zero_from_min, 0.0), 0.0, ops.where(ops.greater(zero_from_min, top), top, rounded))
    return scale, inverse, (0.0 - zero) * scale, (top - zero) * scale


class KerasPrimitives:
    """The same math in `keras.ops`, for any backend: no converter reads these graphs."""

    @staticmethod
    def fake_quant_vars(x, minimum, maximum, bits):
        return fake_quant_with_min_max_vars(x, minimum, maximum, num_bits=bits)

    @staticmethod
    def pass_through(fn, x):
        return straight_through(x, fn(x))

    @staticmethod
    def compile(fn):
        # A JAX training step is one compiled function already.
        return fn

    @staticmethod
    def divide(x, divisor):
        """``x / divisor``, correctly rounded."""
        return x / divisor

    @staticmethod
    def mean(x, axis):
        """The mean over `axis`, kept, correctly rounded from the sum (a tie of levels stays a tie)."""
        return ops.mean(x, axis=axis, keepdims=True)

    @staticmethod
    def executing_eagerly(x):
        return True

    @staticmethod
    def init_scope():
        return contextlib.nullcontext()

    @staticmethod
    def row_products(x, weights):
        return ops.matmul(x, ops.convert_to_tensor(weights, x.dtype))

    @staticmethod
    def row_sum_squares(x):
        rows = ops.expand_dims(x, -2)
        return ops.squeeze(ops.matmul(rows, ops.expand_dims(x, -1)), -1)


class TensorFlowPrimitives(KerasPrimitives):
    """TensorFlow's ops: the graph the TFLite converter reads, and XLA-compiled weight rounding.

    Divisions and means are `KerasPrimitives`' (TensorFlow rounds both correctly).
    """

    @staticmethod
    def fake_quant_vars(x, minimum, maximum, bits):
        import tensorflow as tf

        return tf.quantization.fake_quant_with_min_max_vars(x, minimum, maximum, num_bits=bits, narrow_range=False)

    @staticmethod
    def pass_through(fn, x):
        """``fn(x)`` with the gradient of `x`."""
        import tensorflow as tf

        return tf.grad_pass_through(fn)(x)

    @staticmethod
    def compile(fn):
        """`fn` as one XLA-compiled function (traced once per shape)."""
        import tensorflow as tf

        return tf.function(fn, jit_compile=True, autograph=False)

    @staticmethod
    def executing_eagerly(x):
        import tensorflow as tf

        return tf.executing_eagerly()

    @staticmethod
    def init_scope():
        """Lifts a read of variables out of a graph being traced."""
        import tensorflow as tf

        return tf.init_scope()

    @staticmethod
    def row_products(x, weights):
        """``x @ weights`` over the last axis (a FULLY_CONNECTED for the converter; sizes may be unknown)."""
        import tensorflow as tf

        rows = tf.reshape(x, [-1, x.shape[-1]])
        y = tf.matmul(rows, weights)
        return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [weights.shape[-1]]], axis=0))

    @staticmethod
    def row_sum_squares(x):
        """``sum(x^2)`` over the last axis, kept, as one row-by-row BATCH_MATMUL."""
        import tensorflow as tf

        rows = tf.reshape(x, [-1, 1, x.shape[-1]])
        sums = tf.matmul(rows, rows, transpose_b=True)
        return tf.reshape(sums, tf.concat([tf.shape(x)[:-1], [1]], axis=0))


class JaxPrimitives(KerasPrimitives):
    """`KerasPrimitives` with what JAX's compiled functions need: exact divisions, and telling a trace apart."""

    @staticmethod
    def divide(x, divisor):
        """``x / divisor``, correctly rounded, as TensorFlow divides.

        XLA turns a division by a constant or a broadcast divisor (a scale
        for a whole tensor) into a multiplication by its reciprocal, one
        float32 step off for about 1 value in 5: enough to round a value
        that sits on a tie between two int8 levels the other way. The
        barrier hides the divisor, broadcast to the result's shape, from it.
        """
        import jax

        x = ops.convert_to_tensor(x)
        divisor = ops.convert_to_tensor(divisor, x.dtype)
        shape = np.broadcast_shapes(tuple(x.shape), tuple(divisor.shape))
        return x / jax.lax.optimization_barrier(ops.broadcast_to(divisor, shape))

    @classmethod
    def mean(cls, x, axis):
        return cls.divide(ops.sum(x, axis=axis, keepdims=True), x.shape[axis])

    @staticmethod
    def executing_eagerly(x):
        import jax

        return not isinstance(x, jax.core.Tracer)


_KERAS = KerasPrimitives()
_BY_BACKEND = {"tensorflow": TensorFlowPrimitives(), "jax": JaxPrimitives()}
