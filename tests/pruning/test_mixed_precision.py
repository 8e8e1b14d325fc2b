"""Pruning under mixed_float16 / mixed_bfloat16: trains in 16 bits, masks and stripped kernels stay float32."""

import keras
import numpy as np

from kcompress import pruning
from tests.helpers import data_for, functional_cnn


def test_pruning_trains_and_strips_under_the_policy(policy):
    model = functional_cnn()
    pruned = pruning.prune_low_magnitude(model, pruning.PolynomialDecay(0.0, 0.5, 0, 2, frequency=2))
    assert pruned.layers[-1].compute_dtype == policy.compute_dtype
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data_for(model, n=32)
    history = pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    assert np.isfinite(history.history["loss"]).all()
    for wrapper in pruning.pruning_wrappers(pruned):
        assert all(mask.dtype == "float32" for mask in wrapper.masks)
    stripped = pruning.strip_pruning(pruned)
    for row in pruning.sparsity_report(stripped).rows:
        assert row.zeros == round(row.size * 0.5), row
    assert all(w.dtype == "float32" for w in stripped.weights)
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0).astype("float32"), pruned.predict(x, verbose=0).astype("float32"), atol=1e-2
    )
