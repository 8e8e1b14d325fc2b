"""The pipeline over two local JAX processes (`kcompress.distribution`): one run folder, written by process 0."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.pipeline.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(config_path, out):
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    command = [sys.executable, "-m", "tests.pipeline.two_process_worker", address]
    workers = [
        subprocess.Popen(
            [*command, str(i), str(config_path), str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=1200)
        assert worker.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


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
