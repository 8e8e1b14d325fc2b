"""Where does an int8 `.tflite` part from its QAT model? Tensor by tensor.

`verify` compares outputs. When they disagree, `compare_tensors` finds the
first tensor that does: it runs examples through the QAT model eagerly,
recording each fake-quantized tensor in call order, and through the
`.tflite` with every int8 activation made a graph output (so LiteRT's
XNNPACK delegate writes it out; the ops and their rounding are unchanged).
Each QAT tensor is paired with the `.tflite` tensor on the same grid (scale
and zero point) and of the same size, and the two are compared in levels
of that grid. Positions a ``padding_mask`` input marks as padding are left
out: nothing reads them.
"""

import dataclasses

import numpy as np
from ai_edge_litert.tools import flatbuffer_utils

from kcompress._errors import check_int, expected_error
from kcompress._inputs import as_model_inputs
from kcompress.quantization import fake_quant, quantization_wrappers
from tflite_export._runner import Runner, quantize, read_model
from tflite_export.float_ops import _data, _is_int8
from tflite_export.verify import _features, _rows


@dataclasses.dataclass(frozen=True)
class TensorAgreement:
    """One fake-quantized tensor of the QAT model against its `.tflite` tensor.

    Attributes:
        keras_name: Path of the quantizer that wrote the tensor, and which
            of its calls (``[0]`` the first): a layer repeated in a model
            has the same path each time.
        tflite_name: Name of the `.tflite` tensor it was paired with, or
            ``None`` when none has its grid and size.
        shape: The tensor's Keras shape.
        step: The grid's step.
        exact: Fraction of values on the same level.
        within_one_step: Fraction at most one level apart.
        max_steps: Largest difference, in levels.
        values: Number of values compared (over all examples, padding left out).
    """

    keras_name: str
    tflite_name: str | None
    shape: tuple
    step: float
    exact: float | None = None
    within_one_step: float | None = None
    max_steps: int | None = None
    values: int = 0


@dataclasses.dataclass(frozen=True)
class TensorComparison:
    """`compare_tensors`' result: one `TensorAgreement` per fake-quantized tensor, in call order.

    Attributes:
        tensors: The rows, in the order the QAT model computes them.
        examples: Number of examples compared.
    """

    tensors: tuple
    examples: int

    def first_drift(self, within_one_step=0.99):
        """The first paired tensor with fewer values than `within_one_step` at most one level apart."""
        return next((t for t in self.tensors if t.exact is not None and t.within_one_step < within_one_step), None)

    def __str__(self):
        lines = [f"QAT model vs .tflite, tensor by tensor, on {self.examples} examples (levels of each grid):"]
        for i, t in enumerate(self.tensors):
            if t.exact is None:
                lines.append(f"{i:4d} {t.keras_name:60.60s} no .tflite tensor on its grid")
            else:
                lines.append(
                    f"{i:4d} {t.keras_name:60.60s} exact {t.exact:6.1%}  within one {t.within_one_step:6.1%}"
                    f"  max {t.max_steps:4d}"
                )
        return "\n".join(lines)


def compare_tensors(model, path, data, max_examples=8):
    """Compares every fake-quantized tensor of a QAT model with the int8 `.tflite` made from it.

    Args:
        model: A model returned by `kcompress.quantization.quantize_model`
            (the one converted to `path`).
        path: The int8 `.tflite` (path or bytes).
        data: Inputs, as `verify` takes them.
        max_examples: Compare at most this many examples (each runs eagerly).

    Returns:
        A `TensorComparison`; ``first_drift()`` names where the two part.

    Example:

    >>> import keras
    >>> from kcompress import quantization
    >>> import tflite_export
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    >>> qat = quantization.quantize_model(model)
    >>> x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    >>> _ = quantization.calibrate(qat, x)
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp.tflite")
    >>> _ = tflite_export.convert(qat, path, mode="int8")
    >>> report = compare_tensors(qat, path, x, max_examples=4)
    >>> report.examples, report.first_drift() is None
    (4, True)
    """
    if not quantization_wrappers(model):
        raise expected_error("a model returned by quantize_model", model=getattr(model, "name", model))
    max_examples = check_int("max_examples", max_examples, minimum=1)
    flatbuffer, names = _with_every_int8_tensor_out(read_model(path))
    if not names:
        raise expected_error("an int8 .tflite (its activations quantized)", path=str(path)[:80])
    runner = Runner(flatbuffer)
    x = _features(data, max_examples)
    n = min(max_examples, len(next(iter(x.values())) if isinstance(x, dict) else x))
    batch = runner.batch_size
    found = {}
    for start in range(0, n - n % batch, batch):
        example = _rows(x, start, start + batch)
        with fake_quant.recording() as records:
            model(as_model_inputs(model, example), training=False)
        runner.run(example)
        lite = {i: runner.interpreter.get_tensor(i).astype(np.int64) for i in names}
        keep = _real_positions(example)
        seen = {}
        for order, (quantizer, value) in enumerate(records):
            # A quantizer path repeats in every transformer layer: number its calls.
            seen[quantizer.path] = seen.get(quantizer.path, -1) + 1
            key = (order, f"{quantizer.path}[{seen[quantizer.path]}]")
            found.setdefault(key, []).append(_compare(quantizer, np.asarray(value), lite, names, keep))
    if not found:
        raise expected_error(f"at least {batch} examples (the .tflite's batch)", examples=n)
    return TensorComparison(tuple(_summary(name, runs) for (_, name), runs in found.items()), n - n % batch)


def _with_every_int8_tensor_out(flatbuffer):
    """The flatbuffer with every per-tensor int8 activation as a graph output; ``{index: (name, scale, zp)}``."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    outputs = set(subgraph.outputs)
    names = {}
    for index, tensor in enumerate(subgraph.tensors):
        q = tensor.quantization
        if (
            not _is_int8(tensor)
            or _data(model, tensor) is not None
            or q is None
            or q.scale is None
            or len(q.scale) != 1
        ):
            continue
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
        names[index] = (name, float(q.scale[0]), int(q.zeroPoint[0]))
    subgraph.outputs = list(subgraph.outputs) + [i for i in names if i not in outputs]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), names


def _real_positions(example):
    """``(batch, positions)`` booleans from a ``padding_mask`` input, else None."""
    if isinstance(example, dict) and "padding_mask" in example:
        return np.asarray(example["padding_mask"]).astype(bool)
    return None


def _compare(quantizer, value, lite, names, keep):
    step, zero_point = fake_quant.grid_parameters(*quantizer.current_range())
    levels = quantize(value, step, zero_point, "int8").astype(np.int64)
    best = None
    for index, (name, scale, zp) in names.items():
        q = lite[index]
        if zp != zero_point or abs(scale - step) > 1e-5 * step or q.size != value.size:
            continue
        for candidate in _layouts(q, value.shape):
            diff = _real(np.abs(candidate - levels), keep)
            if best is None or diff.mean() < best[1].mean():
                best = (name, diff)
    shape = tuple(value.shape)
    if best is None:
        return (None, shape, step, None)
    return (best[0], shape, step, best[1])


def _layouts(q, shape):
    """`q` in the Keras layout: as is (reshaped), or with axes 1 and 2 swapped (attention heads)."""
    yield q.reshape(shape)
    if len(shape) == 4:
        yield np.transpose(q.reshape(shape[0], shape[2], shape[1], shape[3]), (0, 2, 1, 3))


def _real(diff, keep):
    """`diff` without padded positions: axis 1 of ``(batch, positions, ...)``, axes 2 and 3 of scores."""
    if keep is None or diff.ndim < 2:
        return diff.ravel()
    positions = keep.shape[1]
    if diff.ndim == 4 and diff.shape[2] == positions and diff.shape[3] == positions:
        return diff[:, :, keep[0]][:, :, :, keep[0]].ravel() if keep.shape[0] == 1 else diff.ravel()
    if diff.shape[1] == positions and diff.shape[0] == keep.shape[0]:
        return diff[keep].ravel()
    return diff.ravel()


def _summary(name, runs):
    tflite_name, shape, step, _ = runs[0]
    diffs = [d for _, _, _, d in runs if d is not None]
    if not diffs:
        return TensorAgreement(name, None, shape, step)
    diff = np.concatenate(diffs)
    return TensorAgreement(
        keras_name=name,
        tflite_name=tflite_name,
        shape=shape,
        step=step,
        exact=float(np.mean(diff == 0)),
        within_one_step=float(np.mean(diff <= 1)),
        max_steps=int(diff.max()),
        values=int(diff.size),
    )
