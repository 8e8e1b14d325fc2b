import pytest

from kcompress.distillation import LayerMap
from tests.helpers import run_serialization_test


@pytest.mark.parametrize(
    "strategy, teacher, student, expected",
    [
        ("uniform", 6, 2, ((2, 0), (5, 1))),
        ("uniform", 6, 3, ((1, 0), (3, 1), (5, 2))),
        ("uniform", 4, 4, ((0, 0), (1, 1), (2, 2), (3, 3))),
        ("last", 6, 2, ((4, 0), (5, 1))),
        ("last", 3, 3, ((0, 0), (1, 1), (2, 2))),
    ],
)
def test_strategies(strategy, teacher, student, expected):
    assert LayerMap(strategy).resolve(teacher, student) == expected


def test_explicit_pairs_are_kept_and_normalised():
    layer_map = LayerMap(pairs=[[0, 1], (3, 0)])
    assert layer_map.pairs == ((0, 1), (3, 0))
    assert layer_map.resolve(4, 2) == ((0, 1), (3, 0))
    assert LayerMap.of([(1, 0)]).pairs == ((1, 0),)
    assert LayerMap.of("last") == LayerMap("last")


def test_pair_past_the_student_depth_is_an_error():
    with pytest.raises(ValueError, match=r"Expected student layers in \[0, 2\).*Received: pair=\(0, 2\)"):
        LayerMap(pairs=[(0, 2)]).resolve(teacher_depth=6, student_depth=2)
    with pytest.raises(ValueError, match=r"Expected teacher layers in \[0, 6\).*Received: pair=\(6, 0\)"):
        LayerMap(pairs=[(6, 0)]).resolve(teacher_depth=6, student_depth=2)


@pytest.mark.parametrize("pairs", [[], [(1,)], [(0, "a")], [(True, 0)], "nope"])
def test_malformed_pairs(pairs):
    if isinstance(pairs, str):
        with pytest.raises(ValueError, match="Expected strategy to be one of"):
            LayerMap.of(pairs)
        return
    with pytest.raises(ValueError, match="Expected pairs to be a non-empty list"):
        LayerMap(pairs=pairs)


def test_deeper_student_needs_pairs():
    with pytest.raises(ValueError, match="Expected a student no deeper than the teacher"):
        LayerMap("uniform").resolve(teacher_depth=2, student_depth=3)


@pytest.mark.parametrize("layer_map", [LayerMap("last"), LayerMap(pairs=[(0, 0), (2, 1)])])
def test_serialization(layer_map):
    assert run_serialization_test(layer_map) == layer_map
