"""The int8 levels and steps `to_onnx` stores a weight as: the QAT wrappers' grids, else rounding.

Internal to `to_onnx`. A kcompress quantization wrapper rounds its kernel to
a symmetric grid (zero point 0, levels within ``±(2^(bits-1) - 1)``, one step
per output channel or one per tensor, as its `QuantizationConfig` says). The
frozen graph tf2onnx converts holds that rounded kernel, transposed (a Conv
kernel is OIHW) or reshaped (an EinsumDense kernel is a 2-D MatMul weight).
`kernel_grids` keys each wrapper's grid by the kernel's sorted values, which no
transpose or reshape changes; `exact_levels` finds the levels and steps whose
product is the weight bit for bit, so the DequantizeLinear gives back what
the Keras model multiplies by. `rounded_levels` rounds a float weight that
is on no grid (``max|w| / 127`` per channel).
"""

import collections

import keras
import numpy as np

from kcompress.quantization import fake_quant, quantization_wrappers

Grid = collections.namedtuple("Grid", "bits per_channel")


def kernel_grids(model):
    """``fingerprint -> Grid`` for every weight a kcompress quantization wrapper of `model` rounds.

    Example:

    >>> from kcompress.quantization import quantize_model
    >>> qat = quantize_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    >>> list(kernel_grids(qat).values())
    [Grid(bits=8, per_channel=True)]
    """
    grids = {}
    for wrapper in quantization_wrappers(model):
        grid = Grid(int(wrapper.config.weight_bits), bool(wrapper.config.per_channel))
        for _, value in wrapper.quantized_weights():
            grids[fingerprint(keras.ops.convert_to_numpy(value))] = grid
    return grids


def fingerprint(weight):
    """The weight's values, sorted, as bytes: the same for any transpose or reshape of it.

    Adding 0 turns -0.0 (a negative weight rounded to level 0) into 0.0,
    which is what a dequantized level 0 is.
    """
    return np.sort(np.asarray(weight, np.float32) + np.float32(0.0), axis=None).tobytes()


def exact_levels(weight, axis, bits):
    """``(int8 levels, float32 steps)`` with ``levels * steps == weight`` exactly, or None.

    The steps are the symmetric grid's (`fake_quant.weight_step` of the
    rounded weight, one per index of `axis`, or one for all when `axis` is
    None), moved by one float32 unit where that is what gives the weight back
    (the largest level times the step rounds in float32).

    Example:

    >>> levels, steps = exact_levels(np.array([[0.5, -0.254], [-1.27, 0.002]], np.float32), axis=1, bits=8)
    >>> levels.tolist(), [round(float(step), 6) for step in steps]
    ([[50, -127], [-127, 1]], [0.01, 0.002])
    >>> exact_levels(np.array([0.5, 0.3], np.float32), axis=None, bits=8) is None
    True
    """
    weight = np.asarray(weight, np.float32)
    reduce = None if axis is None else tuple(d for d in range(weight.ndim) if d != axis)
    top = 2 ** (bits - 1) - 1
    step = keras.ops.convert_to_numpy(fake_quant.weight_step(weight, reduce, bits)).astype(np.float32)
    best_levels, best_steps = None, None
    for candidate in (step, np.nextafter(step, np.inf), np.nextafter(step, np.float32(0))):
        levels = np.round(weight / candidate)
        exact = (np.abs(levels) <= top) & (levels.astype(np.float32) * candidate == weight)
        fits = np.all(exact, axis=reduce, keepdims=True)
        if best_levels is None:
            best_levels, best_steps, found = levels, candidate, fits
        else:
            best_levels = np.where(found, best_levels, levels)
            best_steps = np.where(found, best_steps, candidate)
            found = found | fits
    if not np.all(found):
        return None
    return best_levels.astype(np.int8), _squeeze(best_steps, axis)


def rounded_levels(weight, axis):
    """``(int8 levels, float32 steps)`` of `weight` rounded to ``max|w| / 127`` per index of `axis`.

    Example:

    >>> levels, steps = rounded_levels(np.array([[1.0, -2.0], [0.3, 4.0]], np.float32), axis=1)
    >>> levels.tolist()
    [[127, -64], [38, 127]]
    """
    weight = np.asarray(weight, np.float32)
    reduce = tuple(d for d in range(weight.ndim) if d != axis)
    step = np.max(np.abs(weight), axis=reduce, keepdims=True) / 127.0
    step = np.where(step > 0, step, 1.0).astype(np.float32)
    levels = np.clip(np.round(weight / step), -127, 127).astype(np.int8)
    return levels, _squeeze(step, axis)


def _squeeze(steps, axis):
    """One step per index of `axis` (1-D), or a scalar step."""
    return steps.reshape(()) if axis is None else steps.reshape(-1)
