"""`sensitivity`: what removing part of each layer's heads or FFN units costs in accuracy."""

import dataclasses
import io
import math
import os

import keras
import numpy as np

from kcompress._atomic import write_atomic
from kcompress._errors import check_fraction, check_int, expected_error
from kcompress.structured import _data, _model
from kcompress.structured.importance import Importance, score_with
from kcompress.structured.masking import assigned, mask_values
from kcompress.structured.plan import Plan, top_units

KINDS = ("heads", "ffn")


@dataclasses.dataclass(frozen=True)
class SensitivityTable:
    """Accuracy with part of one layer's heads or FFN units removed, all else intact.

    Attributes:
        baseline: Accuracy of the unpruned model on the data.
        rows: One dict per (layer, kind, level): ``layer``, ``kind``
            (``"heads"`` or ``"ffn"``), ``level`` (fraction removed),
            ``kept``, ``total``, ``accuracy``, ``drop`` (baseline - accuracy).
        examples: Number of evaluation examples.
        importance: The method that ranked the units.
    """

    baseline: float
    rows: tuple
    examples: int
    importance: str

    def drop(self, layer, kind, kept):
        """Accuracy drop of `layer` with `kept` units of `kind` (0.0 when nothing is removed)."""
        for row in self.rows:
            if row["layer"] == layer and row["kind"] == kind and row["kept"] == kept:
                return row["drop"]
        for row in self.rows:
            if row["layer"] == layer and row["kind"] == kind and row["total"] == kept:
                return 0.0
        raise expected_error("a measured (layer, kind, kept) in the table", layer=layer, kind=kind, kept=kept)

    def levels(self, layer, kind):
        """The measured rows of one layer and kind, least pruned first."""
        return sorted((r for r in self.rows if r["layer"] == layer and r["kind"] == kind), key=lambda r: r["level"])

    def markdown(self):
        """The table as markdown: one row per layer and kind, one column per level."""
        levels = sorted({r["level"] for r in self.rows})
        lines = [
            f"Accuracy drop (points) when removing a fraction of one layer's heads or FFN units; baseline "
            f"{self.baseline:.3f} on {self.examples} examples, {self.importance} importance.",
            "",
            "| layer | kind | " + " | ".join(f"{level:.0%} removed" for level in levels) + " |",
            "| --- | --- | " + " | ".join("---" for _ in levels) + " |",
        ]
        layers = sorted({r["layer"] for r in self.rows})
        for layer in layers:
            for kind in KINDS:
                by_level = {r["level"]: r for r in self.levels(layer, kind)}
                cells = [
                    f"{100 * by_level[level]['drop']:+.1f} ({by_level[level]['kept']}/{by_level[level]['total']})"
                    if level in by_level
                    else ""
                    for level in levels
                ]
                lines.append(f"| {layer} | {kind} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def plot(self, path):
        """Writes a PNG (accuracy drop vs fraction removed, a line per layer) atomically; returns the path."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for axis, kind in zip(axes, KINDS):
            for layer in sorted({r["layer"] for r in self.rows}):
                rows = self.levels(layer, kind)
                axis.plot(
                    [0.0] + [r["level"] for r in rows],
                    [0.0] + [100 * r["drop"] for r in rows],
                    marker="o",
                    label=f"layer {layer}",
                )
            axis.set_title(f"{kind}: one layer at a time")
            axis.set_xlabel("fraction removed")
            axis.grid(alpha=0.3)
        axes[0].set_ylabel("accuracy drop (points)")
        axes[1].legend(fontsize="small")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        return _write_atomic(path, buffer.getvalue())


def _write_atomic(path, data):
    path = os.fspath(path)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise expected_error("a path in an existing directory", path=path)
    write_atomic(path, lambda f: f.write(data))
    return path


def _tensorflow_forward(model):
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _jax_forward(model):
    import jax

    # The variables are arguments, not constants of the trace: the masks assigned between calls are read.
    run = jax.jit(lambda trainable, rest, x: model.stateless_call(trainable, rest, x, training=False)[0])
    return lambda x: run(
        [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], x
    )


def _eager_forward(model):
    return lambda x: model(x, training=False)


# Per backend: ``model -> x -> model(x, training=False)``, compiled, reading the variables' current values.
FORWARDS = {"tensorflow": _tensorflow_forward, "jax": _jax_forward}


def compiled_forward(model):
    """A compiled ``x -> model(x, training=False)`` that reads the model's variables on every call.

    Eager on a backend without a compiler here.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer="ones")])
    >>> forward = compiled_forward(model)
    >>> _ = model.layers[0].kernel.assign(2 * np.ones((3, 2)))
    >>> np.asarray(forward(np.ones((1, 3), "float32"))).tolist()
    [[6.0, 6.0]]
    """
    return FORWARDS.get(keras.backend.backend(), _eager_forward)(model)


def _accuracy(forward, found):
    correct = total = 0
    for x, y in found:
        predicted = np.argmax(np.asarray(forward(x)), axis=-1)
        correct += int(np.sum(predicted == np.asarray(y).reshape(predicted.shape)))
        total += len(predicted)
    return correct / total


def _check_levels(levels):
    levels = tuple(levels)
    if not levels:
        raise expected_error("at least one level", levels=levels)
    for level in levels:
        check_fraction("levels", level)
        if level == 0:
            raise expected_error("levels in (0, 1)", levels=levels)
    return tuple(sorted(set(float(level) for level in levels)))


def sensitivity(
    model,
    data,
    levels=(0.25, 0.5, 0.75),
    importance="taylor",
    importance_data=None,
    batches=4,
    batch_size=32,
    plot=None,
    verbose=1,
):
    """Measures the accuracy drop of removing part of each layer's heads or FFN units.

    For every layer, and separately for its heads and its feed-forward
    units, the lowest-scoring fraction `level` is masked (everything else
    intact) and the accuracy on `data` is measured. The model is restored
    afterwards. `prune_to_budget` uses the table to pick per-layer sizes.

    Args:
        model: A built `BertTextClassifier`.
        data: Evaluation data: ``(x, y)`` arrays or a batched dataset of
            ``(x, y)``, `x` the preprocessed inputs.
        levels: Fractions of a layer's units to remove, each in (0, 1).
            Levels that would remove every unit of a layer are skipped.
        importance: ``"taylor"``, ``"magnitude"`` or a precomputed `Importance`.
        importance_data: Data for Taylor scores (default: `data`).
        batches: Batches for Taylor scores.
        batch_size: Rows per batch when data are arrays.
        plot: Optional PNG path for `SensitivityTable.plot`.
        verbose: 1 shows a progress bar.

    Returns:
        A `SensitivityTable`.

    Example:

    >>> import keras_hub, numpy as np
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=8, max_sequence_length=6)
    >>> model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    >>> x = {"token_ids": np.ones((8, 6), "int32"), "segment_ids": np.zeros((8, 6), "int32"),
    ...      "padding_mask": np.ones((8, 6), "int32")}
    >>> table = sensitivity(model, (x, np.zeros(8)), levels=[0.5], importance="magnitude", verbose=0)
    >>> len(table.rows), sorted(table.rows[0])
    (4, ['accuracy', 'drop', 'kept', 'kind', 'layer', 'level', 'total'])
    """
    if not _model.is_classifier(model):
        raise expected_error("a BertTextClassifier (sensitivity measures accuracy)", model=type(model).__name__)
    levels = _check_levels(levels)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    architecture = _model.architecture(model)
    found = _data.batches(data, "data", batch_size=batch_size)
    if not isinstance(importance, Importance):
        importance = score_with(
            model,
            architecture,
            importance_data if importance_data is not None else data,
            method=importance,
            batches=batches,
            batch_size=batch_size,
            verbose=verbose,
        )
    forward = compiled_forward(model)
    full = Plan.full(architecture)
    baseline = _accuracy(forward, found)
    jobs = [(layer, kind, level) for layer in range(architecture.num_layers) for kind in KINDS for level in levels]
    progress = keras.utils.Progbar(len(jobs), verbose=verbose, unit_name="setting")
    rows = []
    for step, (layer, kind, level) in enumerate(jobs):
        sizes = architecture.num_heads if kind == "heads" else architecture.intermediate_dim
        total = sizes[layer]
        kept = total - math.floor(level * total + 0.5)
        if 1 <= kept < total:
            scores = (importance.heads if kind == "heads" else importance.ffn)[layer]
            groups = list(getattr(full, kind))
            groups[layer] = top_units(scores, kept)
            plan = dataclasses.replace(full, **{kind: tuple(groups)})
            with assigned(mask_values(model, architecture, plan)):
                accuracy = _accuracy(forward, found)
            rows.append(
                {
                    "layer": layer,
                    "kind": kind,
                    "level": level,
                    "kept": kept,
                    "total": total,
                    "accuracy": accuracy,
                    "drop": baseline - accuracy,
                }
            )
        progress.update(step + 1)
    table = SensitivityTable(
        baseline=baseline, rows=tuple(rows), examples=sum(len(y) for _, y in found), importance=importance.method
    )
    if plot is not None:
        table.plot(plot)
    return table
