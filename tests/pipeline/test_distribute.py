"""The whole pipeline under MirroredStrategy (large: each stage's training under the strategy is in the
default suite through pruning/quantization/distillation's own test_distribute.py; this runs all five)."""

import os

import pytest

from kcompress.pipeline import run_pipeline
from tests.pipeline.conftest import tiny_config


@pytest.mark.large
def test_pipeline_under_mirrored_strategy(tmp_path, mirrored_strategy):
    result = run_pipeline(tiny_config(tmp_path), tmp_path / "run", strategy=mirrored_strategy, verbose=0)
    assert [row["stage"] for row in result.rows] == ["teacher", "distill", "prune", "qat", "export"]
    assert result.rows[-1]["full_integer"] and os.path.isfile(result.tflite_path)
