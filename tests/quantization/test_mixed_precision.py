"""QAT under mixed_bfloat16 / mixed_float16: trains, and exports the int8 file its float32 copy exports."""

import numpy as np
import pytest

import tflite_export
from kcompress import quantization
from kcompress._float32 import float32_copy
from tests.helpers import mlp, mobile_cnn
from tests.quantization.qhelpers import fit


@pytest.mark.parametrize(
    ("policy", "build", "shape"),
    [("mixed_bfloat16", mlp, (16,)), ("mixed_float16", mlp, (16,)), ("mixed_bfloat16", mobile_cnn, (8, 8, 3))],
    indirect=["policy"],
)
def test_qat_trains_and_exports_as_float32_training_would(policy, build, shape, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1 if len(shape) == 1 else 255, (32, *shape)).astype("float32")
    qat = fit(quantization.quantize_model(build()), x, rng.integers(0, 2, 32))
    assert qat.layers[-1].compute_dtype == policy.compute_dtype
    assert all(
        q.compute_dtype == "float32" for w in quantization.quantization_wrappers(qat) for q in w.quantizers.values()
    )
    conversion = tflite_export.convert(qat, tmp_path / "mixed.tflite", mode="int8")
    assert conversion.model.is_full_integer()
    # The file is the float32 copy's (same weights and ranges): within one output step of it.
    copy = float32_copy(qat)
    assert copy.layers[-1].compute_dtype == "float32"
    assert tflite_export.verify(copy, tmp_path / "mixed.tflite", x).within_one_step == 1.0
