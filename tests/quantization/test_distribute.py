import keras
import numpy as np
import pytest

from kcompress import pruning
from kcompress.quantization import calibrate, quantization_wrappers, quantize_model, strip_quantization
from tests.helpers import data_for, mlp
from tests.quantization.qhelpers import compile_model, outputs, used_ranges


@pytest.fixture
def strategy(mirrored_strategy):
    return mirrored_strategy


def test_qat_under_mirrored_strategy_on_two_cpus(strategy):
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = mlp()
        qat = compile_model(quantize_model(model), run_eagerly=False)
    x, y = data_for(model, n=16)
    qat.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 2 steps, 4 examples per replica.

    ranges = used_ranges(qat)
    # Input and output of the first Dense, output of the second (its input is already quantized).
    assert len(ranges) == 3, ranges
    for key, (low, high) in ranges.items():
        assert np.isfinite([low, high]).all(), key
        assert low <= 0.0 <= high and high - low > 1e-3, (key, low, high)
    first_input = ranges[(0, qat.layers[0].name, "input")]
    assert first_input[0] < 0 < first_input[1]
    assert np.isfinite(outputs(qat, x)).all()
    assert calibrate(qat, x) == 1


def test_pruned_model_quantized_under_the_strategy_keeps_zeros(strategy):
    model = mlp()
    x, y = data_for(model, n=32)
    pruned = pruning.prune_low_magnitude(model, sparsity_schedule=pruning.ConstantSparsity(0.5, frequency=1))
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=8, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    sparse = pruning.strip_pruning(pruned)
    zeros = [np.asarray(layer.kernel) == 0 for layer in sparse.layers]

    with strategy.scope():
        qat = compile_model(quantize_model(sparse), learning_rate=1.0, run_eagerly=False)
    assert all(w.keep_zeros for w in quantization_wrappers(qat))
    qat.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=3, verbose=0)

    stripped = strip_quantization(qat)
    for mask, layer in zip(zeros, stripped.layers, strict=True):
        kernel = np.asarray(layer.kernel)
        assert mask.sum() == mask.size // 2
        assert (kernel[mask] == 0).all()
