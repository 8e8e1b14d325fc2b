import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kcompress import pruning
from tests.helpers import run_serialization_test

shapes = st.sampled_from([(7,), (4, 6), (3, 5, 8), (16, 2, 8), (3, 3, 4, 8)])


@given(data=st.data(), shape=shapes, sparsity=st.floats(0.0, 0.99))
@settings(max_examples=60, deadline=None)
def test_unstructured_mask_has_exact_sparsity(data, shape, sparsity):
    weights = data.draw(hnp.arrays("float32", shape, elements=st.floats(-4, 4, width=32, allow_subnormal=False)))
    mask = np.asarray(pruning.Unstructured().compute_mask(weights, sparsity))
    assert mask.shape == weights.shape
    assert int((mask == 0).sum()) == round(weights.size * sparsity)
    # Kept weights are never smaller in magnitude than pruned ones.
    if 0 < (mask == 0).sum() < mask.size:
        assert np.abs(weights[mask == 1]).min() >= np.abs(weights[mask == 0]).max()


@given(
    data=st.data(),
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8)]),
    shape=st.sampled_from([(8, 3), (16, 5), (3, 3, 8, 2)]),
)
@settings(max_examples=40, deadline=None)
def test_nm_groups_have_exactly_n_nonzeros(data, nm, shape):
    n, m = nm
    axis = 0 if len(shape) == 2 else 2
    weights = data.draw(
        hnp.arrays("float32", shape, elements=st.floats(0.125, 4, width=32, allow_subnormal=False), unique=True)
    )
    mask = np.asarray(pruning.NM(n, m).compute_mask(weights, None, input_axis=axis))
    groups = np.moveaxis(mask, axis, -1).reshape(-1, m)
    assert (groups.sum(axis=-1) == n).all()


@given(data=st.data(), first=st.floats(0.0, 0.6), second=st.floats(0.0, 0.35))
@settings(max_examples=15, deadline=None)
def test_masks_only_grow_with_previous_mask(data, first, second):
    weights = data.draw(hnp.arrays("float32", (6, 10), elements=st.floats(-3, 3, width=32, allow_subnormal=False)))
    pattern = pruning.Unstructured()
    mask1 = np.asarray(pattern.compute_mask(weights, first))
    # Training moves weights: pruned ones may now be large, yet stay pruned.
    noise = hnp.arrays("float32", (6, 10), elements=st.floats(-3, 3, width=32, allow_subnormal=False))
    moved = weights + data.draw(noise)
    mask2 = np.asarray(pattern.compute_mask(moved, first + second, previous_mask=mask1))
    assert ((mask1 == 0) <= (mask2 == 0)).all()
    assert int((mask2 == 0).sum()) == round(60 * (first + second))


def test_block_mask_prunes_whole_blocks():
    weights = np.arange(1, 33, dtype="float32").reshape(4, 8)
    mask = np.asarray(pruning.Block((2, 4)).compute_mask(weights, 0.5))
    blocks = mask.reshape(2, 2, 2, 4).transpose(0, 2, 1, 3).reshape(4, 8)
    assert set(np.unique(blocks.reshape(4, -1).mean(axis=1))) <= {0.0, 1.0}
    assert mask.mean() == 0.5
    # The two blocks of the first rows (smallest values) are the pruned ones.
    assert (mask[:2] == 0).all() and (mask[2:] == 1).all()


@pytest.mark.parametrize("pattern", [pruning.Unstructured(), pruning.NM(2, 4), pruning.Block((1, 4))])
def test_patterns_serialize(pattern):
    assert run_serialization_test(pattern) == pattern


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: pruning.NM(4, 4), "Expected n < m=4 for N:M sparsity. Received: n=4"),
        (lambda: pruning.NM(0, 4), "Expected n >= 1. Received: n=0"),
        (lambda: pruning.NM(1, 1), "Expected m >= 2. Received: m=1"),
        (lambda: pruning.Block((0, 4)), "Expected a block shape of two positive integers"),
        (lambda: pruning.NM(2, 4).validate((10, 3), 0, "dense/kernel"),
         "Expected the input dimension (axis 0) of weight 'dense/kernel' to be divisible by m=4"),
        (lambda: pruning.Block((4, 4)).validate((6, 8), 0, "k"), "to be divisible by the block shape (4, 4)"),
    ],
)
def test_bad_pattern_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)
