"""The pipeline over two local JAX processes (`kcompress.distribution`): one run folder, written by process 0."""

import json
import os

import pytest

from tests.helpers import run_jax_processes
from tests.pipeline.conftest import tiny_config


def _run_two_processes(config_path, out):
    return run_jax_processes("tests.pipeline.two_process_worker", config_path, out, timeout=1200)


@pytest.mark.large
def test_pipeline_on_two_jax_processes(tmp_path):
    config = tiny_config(tmp_path)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    out = tmp_path / "run"
    first, second = _run_two_processes(config_path, out)

    assert [first["is_chief"], second["is_chief"]] == [True, False]
    assert first["stages"] == second["stages"] == ["teacher", "distill", "prune", "qat", "export"]
    assert first["weights"] == second["weights"]  # Trained together: the same final model in both.
    # One run folder, every file of it written by process 0 (process 1 records any write of its own there).
    assert first["writes"] and second["writes"] == []
    names = sorted(os.listdir(out))
    assert names == ["01_teacher", "02_distill", "03_prune", "04_qat", "05_export", "report.json", "report.md",
                     "report.png", "teacher_cache"]  # fmt: skip
    assert first["tflite"] == second["tflite"] and os.path.isfile(first["tflite"])
    export = json.loads((out / "report.json").read_text())["rows"][-1]
    assert export["stage"] == "export" and export["full_integer"] and export["agreement_with_keras"] >= 0.8

    again = _run_two_processes(config_path, out)  # Both resume every stage from the shared folder.
    assert [result["resumed"] for result in again] == [["teacher", "distill", "prune", "qat", "export"]] * 2
    assert again[0]["weights"] == again[1]["weights"] == first["weights"]
