import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompress import pruning
from tests.helpers import run_serialization_test


def tfmot_polynomial(step, initial, final, begin, end, power):
    """tfmot's PolynomialDecay, written out by hand."""
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1 - p) ** power


@pytest.mark.parametrize("step", [0, 1, 37, 50, 99, 100, 150])
def test_polynomial_decay_matches_tfmot_formula(step):
    schedule = pruning.PolynomialDecay(0.1, 0.9, begin_step=10, end_step=100, power=3)
    expected = tfmot_polynomial(step, 0.1, 0.9, 10, 100, 3)
    assert float(schedule.sparsity(step)) == pytest.approx(expected, abs=1e-6)


def test_should_prune_follows_begin_end_and_frequency():
    schedule = pruning.PolynomialDecay(0.0, 0.5, begin_step=10, end_step=30, frequency=10)
    pruned_steps = [s for s in range(50) if bool(schedule(s)[0])]
    assert pruned_steps == [10, 20, 30]


def test_constant_sparsity_open_end_keeps_pruning():
    schedule = pruning.ConstantSparsity(0.5, begin_step=0, frequency=100)
    assert [bool(schedule(s)[0]) for s in (0, 50, 100, 10_000)] == [True, False, True, True]
    assert float(schedule(7)[1]) == 0.5


def test_function_schedule_wraps_a_callable():
    schedule = pruning.FunctionSchedule(lambda step: 0.25, frequency=2)
    assert [bool(schedule(s)[0]) for s in range(4)] == [True, False, True, False]
    assert float(schedule(3)[1]) == 0.25


@given(
    initial=st.floats(0.0, 0.5),
    final=st.floats(0.5, 0.99),
    end=st.integers(1, 1000),
)
@settings(max_examples=40, deadline=None)
def test_polynomial_decay_is_monotone(initial, final, end):
    schedule = pruning.PolynomialDecay(initial, final, begin_step=0, end_step=end)
    steps = [*range(0, end, max(1, end // 20)), end, end + 1]
    values = [float(schedule.sparsity(s)) for s in steps]
    assert all(b >= a - 1e-6 for a, b in zip(values, values[1:]))
    assert values[-2] == pytest.approx(final, abs=1e-6)


@pytest.mark.parametrize(
    "schedule",
    [
        pruning.ConstantSparsity(0.3, begin_step=5, end_step=50, frequency=5),
        pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, power=2, frequency=10),
    ],
)
def test_schedules_serialize(schedule):
    restored = run_serialization_test(schedule)
    assert restored.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: pruning.ConstantSparsity(1.2), "Expected target_sparsity in [0, 1). Received: target_sparsity=1.2"),
        (lambda: pruning.ConstantSparsity(-0.1), "Received: target_sparsity=-0.1"),
        (lambda: pruning.PolynomialDecay(0.0, 1.0, 0, 10), "Expected final_sparsity in [0, 1)"),
        (lambda: pruning.PolynomialDecay(0.0, 0.5, 10, 5), "Expected end_step >= begin_step=10. Received: end_step=5"),
        (lambda: pruning.PolynomialDecay(0.0, 0.5, 10, 10), "Expected end_step > begin_step=10"),
        (lambda: pruning.PolynomialDecay(0.0, 0.5, 0, 10, frequency=0),
         "Expected frequency >= 1. Received: frequency=0"),
        (lambda: pruning.ConstantSparsity(0.5, begin_step=-1), "Expected begin_step >= 0"),
        (lambda: pruning.PolynomialDecay(0.0, 0.5, 0, 10, power=0), "Expected power > 0"),
        (lambda: pruning.FunctionSchedule(0.5), "Expected a callable"),
    ],
)
def test_bad_schedule_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=None) as info:
        make()
    assert message in str(info.value)
