"""`sparsity_report`: how sparse each prunable weight of a model is."""

import dataclasses

import keras
import numpy as np

from kcompress._errors import expected_error
from kcompress.pruning import prunable
from kcompress.pruning.wrapper import PruneLowMagnitude


@dataclasses.dataclass(frozen=True)
class SparsityRow:
    """One weight: where it is, its shape, zeros and layout."""

    path: str
    shape: tuple
    zeros: int
    size: int
    pattern: str

    @property
    def sparsity(self):
        return self.zeros / self.size if self.size else 0.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-weight sparsity and totals; `str()` renders a table.

    Attributes:
        rows: One `SparsityRow` per prunable weight.
        total_zeros: Zeros over all rows.
        total_size: Weights over all rows.
    """

    rows: tuple

    @property
    def total_zeros(self):
        return sum(row.zeros for row in self.rows)

    @property
    def total_size(self):
        return sum(row.size for row in self.rows)

    @property
    def total_sparsity(self):
        return self.total_zeros / self.total_size if self.total_size else 0.0

    def to_dict(self):
        return {
            "rows": [
                dict(dataclasses.asdict(row), sparsity=row.sparsity) for row in self.rows
            ],
            "total_zeros": self.total_zeros,
            "total_size": self.total_size,
            "total_sparsity": self.total_sparsity,
        }

    def __str__(self):
        header = ("weight", "shape", "zeros", "sparsity", "pattern")
        lines = [
            (row.path, "x".join(map(str, row.shape)), f"{row.zeros:,}",
             f"{row.sparsity:.1%}", row.pattern)
            for row in self.rows
        ]
        lines.append(("total", "", f"{self.total_zeros:,} / {self.total_size:,}",
                      f"{self.total_sparsity:.1%}", ""))
        widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]

        def fmt(cells):
            return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([fmt(header), rule] + [fmt(line) for line in lines[:-1]]
                         + [rule, fmt(lines[-1])])


def _detect_pattern(values, axis):
    """Names the layout of a plain weight: dense, N:M or unstructured."""
    if not np.any(values == 0):
        return "dense"
    if values.shape[axis] % 4 == 0 and values.size >= 4:
        groups = np.moveaxis(values, axis, -1).reshape(-1, 4)
        nonzero = np.count_nonzero(groups, axis=-1).max()
        if nonzero <= 2:
            return f"NM({nonzero}, 4)" if nonzero else "zero"
    return "unstructured"


def sparsity_report(model):
    """Returns the sparsity of every prunable weight in `model`.

    Works on models under pruning (reporting the masked weights) and on plain
    or stripped models. Layers are found at any depth, so keras-hub models
    list each attention projection and feed-forward kernel.

    Args:
        model: A Keras model or layer.

    Returns:
        A `SparsityReport`; print it for a table.

    Example:

    >>> from kcompress import pruning
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> report = pruning.sparsity_report(model)
    >>> report.total_size, report.total_sparsity
    (8, 0.0)
    """
    if not isinstance(model, keras.layers.Layer):
        raise expected_error("a Keras model or layer", model=model)
    rows = []
    seen = set()
    layers = model._flatten_layers(include_self=True)
    for layer in layers:
        if isinstance(layer, PruneLowMagnitude):
            for variable, value in zip(layer.pruned_variables, layer.masked_values()):
                seen.add(id(variable))
                values = keras.ops.convert_to_numpy(value)
                rows.append(SparsityRow(variable.path, tuple(values.shape),
                                        int(values.size - np.count_nonzero(values)),
                                        int(values.size), repr(layer.pattern)))
    for layer in layers:
        entry = prunable.lookup(layer)
        if entry is None or isinstance(layer, PruneLowMagnitude) or not layer.built:
            continue
        axes = prunable.input_axes(layer, entry)
        for variable in layer._trainable_variables + layer._non_trainable_variables:
            if variable.name not in axes or id(variable) in seen:
                continue
            seen.add(id(variable))
            values = keras.ops.convert_to_numpy(variable.value)
            rows.append(SparsityRow(variable.path, tuple(values.shape),
                                    int(values.size - np.count_nonzero(values)),
                                    int(values.size),
                                    _detect_pattern(values, axes[variable.name])))
    return SparsityReport(tuple(rows))
