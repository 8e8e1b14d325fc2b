"""`QuantizeLayerNorm`: the float function, BERT-like outlier channels, and the int8 ops it becomes."""

import keras
import numpy as np
import pytest

from kcompress.quantization import QuantizeLayerNorm, calibrate, quantize_model
from kcompress.quantization.fake_quant import grid_step
from tests.quantization.qhelpers import outputs
from tflite_export.convert import convert
from tflite_export.verify import verify


def rows_with_outliers(seed, rows=256, depth=64):
    """Rows of ordinary values, a quarter of them with one channel 4x larger (as BERT's residual stream)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 1.0, (rows, 4, depth)).astype("float32")
    x[: rows // 4, :, 7] *= 4.0
    return x


def layer_norm(epsilon):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 64))
    norm = keras.layers.LayerNormalization(epsilon=epsilon)
    model = keras.Model(inputs, norm(inputs))
    rng = np.random.default_rng(1)
    norm.gamma.assign(rng.uniform(0.5, 1.5, 64).astype("float32"))
    norm.beta.assign(rng.normal(0, 0.1, 64).astype("float32"))
    return model


@pytest.mark.parametrize("epsilon", [1e-12, 1e-3])
def test_quantized_layer_norm_is_the_float_layer_norm_up_to_its_grids(epsilon):
    model = layer_norm(epsilon)
    x = rows_with_outliers(0)
    qat = quantize_model(model)
    calibrate(qat, x)
    wrapper = qat.layers[-1]
    assert isinstance(wrapper, QuantizeLayerNorm)
    # The input's own int8 grid is not the LayerNorm's doing: compare with the float LayerNorm
    # of the rounded input.
    rounded = keras.ops.convert_to_numpy(wrapper.quantizers["input"].apply(x))
    step = float(grid_step(*wrapper.quantizers["output"].current_range()))
    diff = np.abs(outputs(qat, x) - outputs(model, rounded)) / step
    # What is left are the LayerNorm's own grids (centred rows, sum of squares, inverse norm,
    # normalized, scaled, output). Measured: at most 4.3 steps, median 0.6.
    assert diff.max() <= 6 and np.median(diff) <= 1, (diff.max(), np.median(diff))


def test_quantized_layer_norm_converts_to_ops_xnnpack_runs_and_matches(tmp_path):
    model = layer_norm(1e-12)
    x = rows_with_outliers(1, rows=64)
    qat = quantize_model(model)
    calibrate(qat, x)
    conversion = convert(qat, tmp_path / "ln.tflite", mode="int8")
    ops = conversion.model.op_counts()
    assert conversion.model.is_full_integer(), str(conversion)
    assert ops["BATCH_MATMUL"] == 1 and ops["RSQRT"] == 1 and ops["MEAN"] == 1, ops
    assert "L2_NORMALIZATION" not in ops, ops
    # The sum of squares is a product of each row with itself: one int8 tensor read twice.
    (product,) = [op for op in conversion.model.ops if op.name == "BATCH_MATMUL"]
    assert [tuple(t.shape) for t in product.inputs] == [(4, 1, 64)] * 2, product.inputs
    check = verify(qat, conversion.path, x)
    assert check.within_one_step >= 0.95, str(check)
