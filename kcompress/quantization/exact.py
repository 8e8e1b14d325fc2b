"""Integer-exact inference: a layer's int8 products summed on integer levels, scaled once.

An int8 kernel sums products of integers exactly (in int32) and scales the
sum once. Fake quantization multiplies float values that are only close to
``level * step`` and sums them in float32, so a sum that lands within
rounding error of a half step can round the other way; attention amplifies
such one-step differences. In inference calls the quantization wrappers
compute their matrix products from the levels instead, which float32 sums
exactly (below 2^24), so the QAT model computes the numbers the int8 file
computes.
"""

import math

import keras
from keras import ops

from kcompress.quantization import fake_quant


def channel_shape(layer):
    """How per-output-channel scales broadcast against `layer`'s output, or None if they do not.

    Example:

    >>> dense = keras.layers.EinsumDense("abc,cde->abde", (None, 2, 4))
    >>> dense.build((1, 3, 8))
    >>> channel_shape(dense), channel_shape(keras.layers.Dense(3))
    ((2, 4), (-1,))
    >>> transposed = keras.layers.EinsumDense("abc,cd->adb", (4, None))
    >>> transposed.build((1, 3, 8))
    >>> channel_shape(transposed) is None
    True
    """
    if isinstance(layer, keras.layers.EinsumDense):
        _, rest = layer.equation.split(",")
        kernel, output = rest.split("->")
        kept = [i for i, dim in enumerate(kernel) if dim in output]
        if not output.endswith("".join(kernel[i] for i in kept)):
            return None
        return tuple(int(layer.kernel.shape[i]) for i in kept)
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    return (-1,)


def input_levels(x, grid):
    """The integer levels ``k - zero point`` of `x`, which sits on `grid`'s int8 grid."""
    return ops.round(x / fake_quant.grid_step(*grid.current_range(), grid.config.activation_bits))


def integer_linear(linear, layer, x, grid, kernel, axes, bits=8):
    """``layer``'s linear output computed as the int8 kernel computes it, or None if unsupported.

    The bias is added as int32 levels of the step input step × kernel step,
    as TFLite stores it.

    Args:
        linear: ``linear(input, kernel, bias) -> output``: the layer's sum
            and bias add (bias None: no bias) without activation, run on the
            values given.
        layer: The layer (its bias, and its output layout).
        x: The input, on `grid`.
        grid: The `ActivationQuantizer` whose grid `x` is on.
        kernel: The kernel, already on its symmetric grid.
        axes: The kernel's per-channel reduction axes (None: per tensor).
        bits: Weight bits.
    """
    shape = () if axes is None else channel_shape(layer)
    bias = getattr(layer, "bias", None)
    kernel_step = fake_quant.weight_step(kernel, axes, bits)
    per_channel_bias = bias is None or axes is None or math.prod(kernel_step.shape) == math.prod(bias.shape)
    if shape is None or not per_channel_bias:
        return None
    input_step = fake_quant.grid_step(*grid.current_range(), grid.config.activation_bits)
    bias_levels = None
    if bias is not None:
        bias_steps = ops.reshape(kernel_step, () if axes is None else bias.shape)
        bias_levels = ops.round(bias.value / (input_step * bias_steps))
    kernel_levels = ops.round(kernel / kernel_step)
    return linear(input_levels(x, grid), kernel_levels, bias_levels) * (input_step * ops.reshape(kernel_step, shape))


def integer_product(equation, a, grid_a, b, grid_b):
    """``einsum(equation, a, b)`` of two tensors on int8 grids, summed on their integer levels.

    Example:

    >>> import numpy as np
    >>> from kcompress.quantization import ActivationQuantizer
    >>> grid = ActivationQuantizer(fixed_range=(-1.0, 127.0 / 128.0))  # step 1/128
    >>> a = np.array([[3.0, -5.0]], "float32") / 128
    >>> float(integer_product("ij,ij->i", a, grid, a, grid)[0] * 128 * 128)
    34.0
    """
    return ops.einsum(equation, input_levels(a, grid_a), input_levels(b, grid_b)) * (
        fake_quant.grid_step(*grid_a.current_range(), grid_a.config.activation_bits)
        * fake_quant.grid_step(*grid_b.current_range(), grid_b.config.activation_bits)
    )
