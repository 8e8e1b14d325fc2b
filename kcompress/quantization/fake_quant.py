"""Fake quantization: float math that rounds to the grid an int8 kernel uses.

Weights are rounded (by one XLA-compiled function in training steps) with a
straight-through gradient; once a model is frozen for conversion that math
folds into constants already on the int8 grid, which the TFLite converter
stores losslessly (per channel for FULLY_CONNECTED, CONV_2D and
DEPTHWISE_CONV_2D). Activations go through TF's
``FakeQuantWithMinMaxVars`` op, the op the converter reads ranges from.
Under another Keras backend (JAX) both run as the same math in `keras.ops`
(`backends`), so a model trains there and converts under TensorFlow.
"""

import contextlib
import functools
import math
import weakref

from keras import ops

from kcompress.quantization import backends

_MARK = "_kcompress_quantized"
_recorders = []
# id(tensor) -> (weak reference to it, its mark), for tensors that take no attribute (JAX's tracers).
_marks = {}


def weight_step(weights, reduce_axes, bits=8):
    """Step (scale) of the symmetric grid of `weights`, one per kept axis.

    Example:

    >>> import numpy as np
    >>> float(weight_step(np.array([[-1.27, 0.5]]), reduce_axes=None)[0, 0])
    0.01
    """
    return _step(weights, reduce_axes, 2 ** (bits - 1) - 1)


def _step(weights, reduce_axes, qmax):
    largest = ops.max(ops.abs(weights), axis=reduce_axes, keepdims=True)
    return backends.primitives().divide(ops.maximum(largest, 1e-12), qmax)


def fake_quant_symmetric(weights, reduce_axes, bits=8, compiled=False):
    """Rounds `weights` to a symmetric grid (zero point 0, ±(2^(bits-1)-1)).

    The gradient passes straight through (the rounding is invisible to it).

    Args:
        weights: A float tensor.
        reduce_axes: Axes that share one scale: the input (contracted) axes
            for per-channel quantization, or None for one scale per tensor.
        bits: Grid bits.
        compiled: Round in one XLA-compiled function, for training steps:
            a step rounds every kernel again, and as separate TF ops
            (absolute value, maximum, divide, round, multiply, ...) each pass
            over a large kernel costs about as much as the batch's matrix
            product. Off for graphs that are exported: the TFLite converter
            and tf2onnx cannot read an XLA-compiled call.

    Example:

    >>> import numpy as np
    >>> w = np.array([[0.3, -1.0], [1.27, 0.003]], "float32")
    >>> np.asarray(fake_quant_symmetric(w, reduce_axes=0), "float64").round(4).tolist()
    [[0.3, -1.0], [1.27, 0.0]]
    """
    weights = ops.convert_to_tensor(weights)
    if isinstance(reduce_axes, int):
        reduce_axes = (reduce_axes,)
    axes = None if reduce_axes is None else tuple(int(a) for a in reduce_axes)
    qmax = 2 ** (bits - 1) - 1
    primitives = backends.primitives()
    if compiled:
        # qmax as an input: XLA would turn a division by a constant into a multiplication by its
        # reciprocal, which can differ from the plain ops in the last bit.
        qmax = ops.convert_to_tensor(qmax, weights.dtype)
        return primitives.pass_through(lambda w: _compiled_snap(axes, primitives.compile)(w, qmax), weights)
    return primitives.pass_through(lambda w: _snap(w, qmax, axes), weights)


def _snap(weights, qmax, reduce_axes):
    """`weights` on their symmetric grid (no gradient handling)."""
    step = _step(weights, reduce_axes, qmax)
    # |weights / step| <= qmax by construction of `step` (up to rounding, which `round` absorbs): no clip.
    return ops.round(backends.primitives().divide(weights, step)) * step


@functools.cache
def _compiled_snap(reduce_axes, compile):
    """`_snap` over these axes as one compiled function (XLA under TensorFlow, traced once per shape)."""
    return compile(functools.partial(_snap, reduce_axes=reduce_axes))


def fake_quant_range(x, minimum, maximum, bits=8):
    """Fake-quantizes `x` to `bits` on ``[minimum, maximum]`` (TF's nudged grid).

    The range is widened to contain 0, as TFLite requires. Uses
    ``tf.quantization.fake_quant_with_min_max_vars``, whose gradient clips
    outside the range and which the TFLite converter turns into int8
    tensor parameters (under another backend, the same math in `keras.ops`:
    `backends.fake_quant_with_min_max_vars`).

    Example:

    >>> float(fake_quant_range(0.3, -1.0, 1.0))
    0.29803...
    """
    x = ops.convert_to_tensor(x, "float32")
    minimum, maximum = _conversion_range(minimum, maximum)
    return backends.primitives().fake_quant_vars(x, minimum, maximum, bits)


def _conversion_range(minimum, maximum):
    """The ends the converter reads for a learnt range: widened to contain 0, width exact in float32."""
    minimum = ops.minimum(ops.cast(minimum, "float32"), 0.0)
    maximum = ops.maximum(ops.cast(maximum, "float32"), minimum + 1e-6)
    maximum = ops.maximum(maximum, 0.0)
    return _exact_width(minimum, maximum)


def symmetric_range(magnitude, bits=8):
    """The range ``[-m, m (1 - 2^(1-bits)))`` of a grid centred on zero: zero point exactly 0.

    Example:

    >>> symmetric_range(1.0)
    (-1.0, 0.9921875)
    """
    levels = 2.0 ** (bits - 1)
    return -magnitude, magnitude * ((levels - 1.0) / levels)


def grid_step(minimum, maximum, bits=8):
    """The step of the grid `fake_quant_range` rounds to on ``[minimum, maximum]``.

    Example:

    >>> float(grid_step(-1.0, 127.0 / 128.0))
    0.0078125
    """
    return _grid(minimum, maximum, bits)[1]


def grid_parameters(minimum, maximum, bits=8):
    """``(scale, zero point)`` of the signed int grid `fake_quant_range` rounds to, as TFLite stores it.

    Example:

    >>> grid_parameters(-1.0, 127.0 / 128.0)
    (0.0078125, 0)
    """
    lowest, step = (float(v) for v in _grid(minimum, maximum, bits))
    return step, int(round(-(2.0 ** (bits - 1)) - lowest / step))


def _grid(minimum, maximum, bits):
    """``(lowest value, step)`` of the grid `fake_quant_range` rounds to."""
    minimum, maximum = _conversion_range(minimum, maximum)
    return minimum, backends.primitives().divide(maximum - minimum, 2.0**bits - 1.0)


def bias_on_grid(bias, input_step, kernel, reduce_axes, bits=8):
    """`bias` rounded to the int32 grid TFLite stores it on: step = input step × kernel step.

    The int8 kernels add an integer bias to the integer sum; a float bias
    sits up to half of that step away, enough to round some outputs the
    other way. `kernel` must already be on its symmetric grid (its steps
    are read back from it); a bias that does not have one value per
    channel of those steps is returned as is.

    Example:

    >>> import numpy as np
    >>> kernel = np.array([[1.27, -2.54], [0.3, 0.01]], "float32")  # steps 0.01 and 0.02
    >>> bias = np.array([0.0174, 0.0174], "float32")  # input step 0.5: bias steps 0.005 and 0.01
    >>> np.asarray(bias_on_grid(bias, 0.5, kernel, (0,)), "float64").round(6).tolist()
    [0.015, 0.02]
    """
    steps = weight_step(kernel, reduce_axes, bits)
    bias = ops.convert_to_tensor(bias)
    if reduce_axes is None:
        steps = ops.reshape(steps, ())
    elif math.prod(steps.shape) == math.prod(bias.shape):
        steps = ops.reshape(steps, bias.shape)
    else:
        return bias
    step = ops.cast(input_step, bias.dtype) * steps
    return ops.round(backends.primitives().divide(bias, step)) * step


def mean_on_grid(x, minimum, maximum, axis=-1, bits=8):
    """The mean of `x` over `axis`, rounded on the grid `x` is on, as XNNPACK's int8 MEAN rounds it.

    `x` must already be fake-quantized on ``[minimum, maximum]``. The mean
    of its integer levels is computed exactly and a tie goes to the even
    int8 level, as LiteRT's CPU delegate (XNNPACK) writes a MEAN whose
    output keeps its input's scale. Fake quantization would round a tie up:
    with 16 values (a hidden size that is a power of two) one mean in 16 is
    a tie, and a LayerNorm's mean one step off moves the whole row.

    Example:

    >>> import numpy as np
    >>> grid = (-1.0, 127.0 / 128.0)  # step 1/128, zero point 0
    >>> levels = np.array([[1, 2], [2, 3], [-3, -2]], "float32") / 128
    >>> (np.asarray(mean_on_grid(levels, *grid)) * 128).ravel().tolist()
    [2.0, 2.0, -2.0]
    """
    minimum, scale = _grid(minimum, maximum, bits)
    top = 2.0**bits - 1.0
    # TF's FakeQuant nudges the zero point to an integer level; `x` sits on levels (k - zero) * scale.
    divide = backends.primitives().divide
    zero = ops.clip(ops.round(divide(-minimum, scale)), 0.0, top)
    levels = ops.round(divide(ops.convert_to_tensor(x, "float32"), scale)) + zero
    # Integer sums stay exact in float32 below 2^24; `round` sends ties to the even level.
    mean = ops.round(backends.primitives().mean(levels, axis))
    return (ops.clip(mean, 0.0, top) - zero) * scale


def fake_quant_training(x, minimum, maximum, bits=8):
    """`fake_quant_range` for a training step, on a range with ``minimum <= 0 <= maximum``.

    Skips what only conversion needs (widening to contain zero, which a
    learnt range already does, and the exact width of `_exact_width`), so a
    training step runs fewer small ops; the grid moves by at most 2^-21 of
    the range.
    """
    maximum = ops.maximum(maximum, minimum + 1e-6)
    return backends.primitives().fake_quant_vars(x, minimum, maximum, bits)


def _exact_width(minimum, maximum):
    """Rounds both ends to a multiple of 2^-20 of the larger magnitude's power of two.

    Then ``maximum - minimum`` is exact in float32. The TFLite converter
    computes a tensor's scale from these ends sometimes in float32 and
    sometimes in float64; when the width rounds in float32 the two scales
    differ in the last bits and an op that must keep its input's scale
    (STRIDED_SLICE, RESHAPE, ...) fails the converter's equality check.
    The ends move by at most 2^-21 of the larger one.

    Example:

    >>> import numpy as np
    >>> low, high = _exact_width(-2.9154413, 2.803309)
    >>> float(high) - float(low) == float(np.float32(high) - np.float32(low))
    True
    """
    minimum = ops.convert_to_tensor(minimum, "float32")
    maximum = ops.convert_to_tensor(maximum, "float32")
    largest = ops.maximum(ops.abs(minimum), ops.abs(maximum))
    # The power of two at or below `largest`, exactly: its float32 exponent bits.
    power = ops.view(ops.bitwise_and(ops.view(largest, "int32"), 0x7F800000), "float32")
    unit = power * 2.0**-20
    return ops.round(minimum / unit) * unit, ops.round(maximum / unit) * unit


def fake_quant_constant(x, bits=8):
    """Fake-quantizes a small constant (a LayerNorm scale) on its own range."""
    return fake_quant_range(x, ops.min(x), ops.max(x), bits)


def mark(x, quantizer=None):
    """Records that `x` already carries an int8 range, and which quantizer gave it (best effort)."""
    if _recorders and quantizer is not None and backends.primitives().executing_eagerly(x):
        _recorders[-1].append((quantizer, x))
    value = quantizer if quantizer is not None else True
    try:
        setattr(x, _MARK, value)
    except (AttributeError, TypeError):
        _mark_by_reference(x, value)
    return x


def _mark_by_reference(x, value):
    """Marks `x` in `_marks` (under `jax.jit` the tensors are tracers, without attributes); forgotten when it dies."""
    key = id(x)
    try:
        reference = weakref.ref(x, lambda _, key=key: _marks.pop(key, None))
    except TypeError:
        return
    _marks[key] = (reference, value)


def _mark_of(x):
    """What `mark` recorded for `x`: its quantizer, True, or None."""
    value = getattr(x, _MARK, None)
    if value is None:
        reference, recorded = _marks.get(id(x), (None, None))
        if reference is not None and reference() is x:
            value = recorded
    return value


@contextlib.contextmanager
def recording():
    """Within the context, eager calls list each ``(quantizer, fake-quantized tensor)`` in call order.

    Example:

    >>> import numpy as np
    >>> from kcompress.quantization import quantizers
    >>> quantizer = quantizers.ActivationQuantizer(fixed_range=(0.0, 1.0))
    >>> with quantizers.fake_quant.recording() as records:
    ...     _ = quantizer(np.array([0.3]))
    >>> [(q is quantizer, round(float(np.asarray(y)[0]), 4)) for q, y in records]
    [(True, 0.302)]
    """
    records = []
    _recorders.append(records)
    try:
        yield records
    finally:
        _recorders.remove(records)


def is_marked(x):
    """True if `x` came out of a kcompress activation quantizer."""
    return _mark_of(x) is not None


def quantizer_of(x):
    """The `ActivationQuantizer` whose grid `x` is on, if `mark` was told; else None."""
    source = _mark_of(x)
    return None if source is None or source is True else source
