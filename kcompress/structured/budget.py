"""`prune_to_budget`: per-layer head and FFN sizes for a parameter (or latency) budget."""

import dataclasses
import os
import tempfile

import keras

import tflite_export
from kcompress._errors import check_int, expected_error
from kcompress.structured import _model
from kcompress.structured.api import check_scores, prune_with
from kcompress.structured.importance import Importance, score_with
from kcompress.structured.sensitivity import KINDS


@dataclasses.dataclass(frozen=True)
class BudgetResult:
    """What `prune_to_budget` chose, and the pruned model.

    Attributes:
        heads: Heads kept per layer.
        ffn: Feed-forward units kept per layer.
        parameters: Parameters of the pruned model.
        predicted_drop: Sum of the table's accuracy drops of the chosen
            sizes (layers assumed independent): a guide, not a measurement.
        latency_ms: Measured median `.tflite` latency, when a latency budget was given.
        model: The pruned model (fine-tune it next).
    """

    heads: tuple
    ffn: tuple
    parameters: int
    predicted_drop: float
    latency_ms: float | None = None
    model: object = dataclasses.field(default=None, repr=False, compare=False)


def _unit_parameters(architecture):
    """Parameters one head / one FFN unit owns: q, k, v kernels and biases + output kernel; in + bias + out."""
    hidden, key_dim = architecture.hidden_dim, architecture.key_dim
    return {"heads": 4 * hidden * key_dim + 3 * key_dim, "ffn": 2 * hidden + 1}


def _options(table, architecture, layer, kind):
    """``[(kept, drop)]`` for one layer and kind, from no pruning to the most; drops made non-decreasing.

    Each option keeps fewer units than the one before, so each step of the greedy search saves parameters.
    """
    total = (architecture.num_heads if kind == "heads" else architecture.intermediate_dim)[layer]
    options, worst = [(total, 0.0)], 0.0
    for row in table.levels(layer, kind):
        if row["total"] != total:
            raise expected_error("a sensitivity table measured on this model", table_total=row["total"], total=total)
        if row["kept"] >= total:
            continue  # A level that removes nothing: no pruning costs nothing.
        worst = max(worst, row["drop"])
        if row["kept"] == options[-1][0]:  # Two levels that keep as many units: one option, the worse drop.
            options[-1] = (row["kept"], worst)
        else:
            options.append((row["kept"], worst))
    return options


def _greedy_states(model, architecture, table):
    """Every state of the greedy search: cheapest accuracy per parameter removed first."""
    per_unit = _unit_parameters(architecture)
    keys = [(layer, kind) for layer in range(architecture.num_layers) for kind in KINDS]
    options = {key: _options(table, architecture, *key) for key in keys}
    position = dict.fromkeys(keys, 0)
    parameters = model.count_params()

    def state():
        counts = {
            kind: tuple(options[(layer, kind)][position[(layer, kind)]][0] for layer in range(architecture.num_layers))
            for kind in KINDS
        }
        drop = sum(options[key][position[key]][1] for key in keys)
        return counts["heads"], counts["ffn"], parameters, drop

    states = [state()]
    while True:
        best = None
        for key in keys:
            if position[key] + 1 >= len(options[key]):
                continue
            (kept, drop), (next_kept, next_drop) = options[key][position[key]], options[key][position[key] + 1]
            saved = (kept - next_kept) * per_unit[key[1]]
            ratio = (next_drop - drop) / saved
            if best is None or (ratio, -saved) < best[0]:
                best = ((ratio, -saved), key, saved)
        if best is None:
            return states
        _, key, saved = best
        position[key] += 1
        parameters -= saved
        states.append(state())


def _latency(model, input_shapes, mode, threads, runs):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "candidate.tflite")
        tflite_export.convert(model, path, mode=mode, input_shapes=input_shapes)
        return tflite_export.benchmark(path, threads=threads, runs=runs).median_ms


def prune_to_budget(
    model,
    table,
    max_params=None,
    max_latency_ms=None,
    importance="taylor",
    importance_data=None,
    batches=4,
    batch_size=32,
    input_shapes=None,
    mode="float32",
    threads=2,
    runs=20,
    verbose=1,
):
    """Prunes a model to a parameter and/or `.tflite` latency budget, guided by a sensitivity table.

    Starting from the full model, the search repeatedly takes the next
    measured level of the (layer, heads/FFN) whose accuracy drop per
    parameter removed is smallest (drops from `sensitivity`, assumed to
    add up across layers), until the model has at most `max_params`
    parameters. With `max_latency_ms`, it continues along the same path
    and binary-searches the first size whose `.tflite` (converted with
    `mode`, timed with `tflite_export.benchmark`) meets the latency too.
    Fine-tune the returned model afterwards.

    Args:
        model: A built `BertTextClassifier` (the one the table was measured on).
        table: A `SensitivityTable` of `model`.
        max_params: Parameter budget (int), or None.
        max_latency_ms: Median LiteRT latency budget in ms, or None. Needs
            the TensorFlow backend.
        importance: ``"taylor"``, ``"magnitude"`` or an `Importance`, to rank
            the units within each layer (as in `prune_transformer`).
        importance_data: Data for Taylor scores.
        batches: Batches for Taylor scores.
        batch_size: Rows per batch when `importance_data` is arrays.
        input_shapes: For the latency budget: shapes without the batch axis,
            e.g. ``{"token_ids": (64,), "segment_ids": (64,), "padding_mask": (64,)}``.
        mode: `tflite_export.convert` mode for the latency budget.
        threads: LiteRT threads for the latency budget.
        runs: Timed runs per candidate.
        verbose: 1 shows progress.

    Returns:
        A `BudgetResult` with the pruned model.

    Example:

    >>> import keras_hub, numpy as np
    >>> from kcompress.structured import sensitivity
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=4,
    ...     hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    >>> model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    >>> x = {"token_ids": np.ones((8, 8), "int32"), "segment_ids": np.zeros((8, 8), "int32"),
    ...      "padding_mask": np.ones((8, 8), "int32")}
    >>> table = sensitivity(model, (x, np.zeros(8)), importance="magnitude", verbose=0)
    >>> result = prune_to_budget(model, table, max_params=5000, importance="magnitude", verbose=0)
    >>> result.parameters <= 5000, result.model.count_params() == result.parameters
    (True, True)
    """
    if max_params is None and max_latency_ms is None:
        raise expected_error("max_params and/or max_latency_ms", max_params=None, max_latency_ms=None)
    if max_params is not None:
        max_params = check_int("max_params", max_params, minimum=1)
    if max_latency_ms is not None and (isinstance(max_latency_ms, bool) or not max_latency_ms > 0):
        raise expected_error("max_latency_ms > 0", max_latency_ms=max_latency_ms)
    if max_latency_ms is not None and keras.backend.backend() != "tensorflow":
        raise expected_error(
            "the TensorFlow backend for a latency budget (each candidate is timed as a .tflite, which "
            "tflite_export converts from TensorFlow models); under another backend use max_params",
            backend=keras.backend.backend(),
        )
    if max_latency_ms is not None and input_shapes is None:
        raise expected_error(
            "input_shapes for a latency budget (the .tflite needs a fixed sequence length)", input_shapes=None
        )
    architecture = _model.architecture(model)
    states = _greedy_states(model, architecture, table)
    start = 0
    if max_params is not None:
        start = next((i for i, s in enumerate(states) if s[2] <= max_params), None)
        if start is None:
            raise expected_error(
                f"max_params >= {states[-1][2]:,}, the smallest model the table's levels reach (add higher levels "
                f"to the sensitivity sweep, or drop layers with prune_transformer(layers=...))",
                max_params=max_params,
            )
    if isinstance(importance, Importance):
        check_scores(architecture, importance)
    else:
        importance = score_with(model, architecture, importance_data, importance, batches, batch_size, verbose=verbose)

    def pruned(state):
        return prune_with(model, architecture, importance, heads=list(state[0]), ffn=list(state[1]))

    if max_latency_ms is None:
        heads, ffn, parameters, drop = states[start]
        return BudgetResult(heads, ffn, parameters, drop, model=pruned(states[start]))
    return _search_latency(pruned, states, start, max_latency_ms, input_shapes, mode, threads, runs, verbose)


def _search_latency(pruned, states, start, max_latency_ms, input_shapes, mode, threads, runs, verbose):
    """Binary search along the greedy path for the first state under the latency budget.

    ``pruned(state)`` builds the model of a state.
    """
    measured = {}

    def measure(i):
        if i not in measured:
            candidate = pruned(states[i])
            measured[i] = candidate, _latency(candidate, input_shapes, mode, threads, runs)
            if verbose:
                print(f"candidate {i}: {states[i][2]:,} parameters, {measured[i][1]:.3f} ms", flush=True)
        return measured[i]

    low, high = start, len(states) - 1
    if measure(low)[1] <= max_latency_ms:
        high = low
    elif measure(high)[1] > max_latency_ms:
        raise expected_error(
            f"max_latency_ms >= {measured[high][1]:.3f}, the latency of the smallest model the table's levels reach",
            max_latency_ms=max_latency_ms,
        )
    while low < high:
        middle = (low + high) // 2
        if measure(middle)[1] <= max_latency_ms:
            high = middle
        else:
            low = middle + 1
    model, latency = measure(low)
    heads, ffn, parameters, drop = states[low]
    return BudgetResult(heads, ffn, parameters, drop, latency_ms=latency, model=model)
