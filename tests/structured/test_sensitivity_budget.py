"""Sensitivity table and plot, parameter and latency budgets."""

import os
import tempfile

import numpy as np
import pytest

from kcompress import structured
from kcompress.structured import SensitivityTable, importance_scores, prune_to_budget, sensitivity
from tests.structured.shelpers import SEQ, inputs, logits, tiny_classifier

SHAPES = {name: (SEQ,) for name in ("token_ids", "segment_ids", "padding_mask")}


@pytest.fixture
def setup():
    model = tiny_classifier()
    x, _ = inputs(64)
    y = np.argmax(logits(model, x), axis=-1)  # the model's own predictions: baseline accuracy 1.0
    scores = importance_scores(model, method="magnitude")
    return model, (x, y), scores


def test_table_rows_markdown_and_plot(setup):
    model, data, scores = setup
    before = [np.array(w) for w in model.get_weights()]
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "sensitivity.png")
    table = sensitivity(model, data, levels=(0.25, 0.5, 0.75), importance=scores, plot=path, verbose=0)
    assert table.baseline == 1.0 and table.examples == 64 and table.importance == "magnitude"
    assert len(table.rows) == 2 * 2 * 3
    row = table.levels(1, "heads")[1]
    assert (row["level"], row["kept"], row["total"]) == (0.5, 2, 4)
    assert row["drop"] == pytest.approx(1.0 - row["accuracy"])
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in table.rows)
    assert any(r["drop"] > 0 for r in table.rows)
    markdown = table.markdown()
    assert "| 1 | heads |" in markdown and "75% removed" in markdown
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(folder) == ["sensitivity.png"]  # no temporary file left behind
    for old, new in zip(before, model.get_weights()):  # masks were undone
        np.testing.assert_array_equal(old, new)


def test_table_drop_matches_masked_accuracy(setup):
    model, (x, y), scores = setup
    table = sensitivity(model, (x, y), levels=[0.5], importance=scores, verbose=0)
    plan = structured.make_plan(structured._model.architecture(model), scores, ffn=[32, 16])
    masked = structured.mask_transformer(model, plan)
    accuracy = np.mean(np.argmax(logits(masked, x), -1) == y)
    assert table.drop(1, "ffn", 16) == pytest.approx(1.0 - accuracy)


def test_levels_removing_everything_are_skipped():
    model = tiny_classifier(num_heads=2)
    x, y = inputs(32)
    table = sensitivity(model, (x, y), levels=[0.5, 0.8], importance="magnitude", verbose=0)
    assert {(r["kind"], r["level"]) for r in table.rows} == {("heads", 0.5), ("ffn", 0.5), ("ffn", 0.8)}


@pytest.mark.parametrize("fraction", [0.9, 0.75, 0.6])
def test_budget_meets_the_parameter_count(setup, fraction):
    model, data, scores = setup
    table = sensitivity(model, data, importance=scores, verbose=0)
    budget = int(fraction * model.count_params())
    result = prune_to_budget(model, table, max_params=budget, importance=scores, verbose=0)
    assert result.parameters <= budget
    assert result.model.count_params() == result.parameters
    assert list(result.heads) == result.model.backbone.num_heads
    assert list(result.ffn) == result.model.backbone.intermediate_dim
    assert result.predicted_drop >= 0


def _synthetic_table(drops):
    """A table with given drops: ``{(layer, kind): [drop at 25%, 50%, 75%]}`` for 4 heads / 32 units."""
    rows = []
    for (layer, kind), values in drops.items():
        total = 4 if kind == "heads" else 32
        for level, drop in zip((0.25, 0.5, 0.75), values):
            kept = total - int(np.floor(level * total + 0.5))
            rows.append(
                {
                    "layer": layer,
                    "kind": kind,
                    "level": level,
                    "kept": kept,
                    "total": total,
                    "accuracy": 0.9 - drop,
                    "drop": drop,
                }
            )
    return SensitivityTable(baseline=0.9, rows=tuple(rows), examples=100, importance="magnitude")


def test_budget_takes_the_cheapest_drops_first(setup):
    model, _, scores = setup
    expensive = [0.3, 0.4, 0.5]
    table = _synthetic_table(
        {(0, "heads"): expensive, (1, "heads"): [0.0, 0.0, 0.01], (0, "ffn"): expensive, (1, "ffn"): expensive}
    )
    per_head = 4 * 16 * 4 + 3 * 4
    result = prune_to_budget(model, table, max_params=model.count_params() - 2 * per_head, importance=scores, verbose=0)
    assert result.heads == (4, 2) and result.ffn == (32, 32)
    assert result.predicted_drop == 0.0
    result = prune_to_budget(model, table, max_params=model.count_params() - 3 * per_head, importance=scores, verbose=0)
    assert result.heads == (4, 1) and result.predicted_drop == pytest.approx(0.01)


def test_budget_with_two_levels_that_keep_as_many_heads():
    model = tiny_classifier(num_heads=2)
    x, y = inputs(32)
    # 25% and 50% of 2 heads both keep 1 head: one option, not a zero-parameter step.
    table = sensitivity(model, (x, y), levels=(0.25, 0.5), importance="magnitude", verbose=0)
    scores = importance_scores(model, method="magnitude")
    result = prune_to_budget(model, table, max_params=model.count_params() - 1, importance=scores, verbose=0)
    assert result.model.count_params() < model.count_params()


def test_budget_too_small_is_a_clear_error(setup):
    model, data, scores = setup
    table = sensitivity(model, data, levels=[0.5], importance=scores, verbose=0)
    with pytest.raises(ValueError, match=r"Expected max_params >= [\d,]+, the smallest model"):
        prune_to_budget(model, table, max_params=1000, importance=scores, verbose=0)


def test_latency_budget(setup):
    model, data, scores = setup
    table = sensitivity(model, data, levels=[0.5], importance=scores, verbose=0)
    result = prune_to_budget(
        model, table, max_latency_ms=1e6, importance=scores, input_shapes=SHAPES, runs=3, verbose=0
    )
    assert result.latency_ms is not None and result.latency_ms > 0
    assert result.parameters == model.count_params()  # the unpruned model already meets a huge budget
    with pytest.raises(ValueError, match="Expected max_latency_ms >= "):
        prune_to_budget(model, table, max_latency_ms=1e-9, importance=scores, input_shapes=SHAPES, runs=3, verbose=0)
