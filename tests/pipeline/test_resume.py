"""Kill a pipeline run midway; the next run finishes it without redoing finished stages.

Large: a second process runs the pipeline until it is killed, then this one finishes it. Resuming from
finished stages is in the default suite through test_run.py (a second run, changed settings).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kcompress.pipeline import run_pipeline
from tests.pipeline.conftest import tiny_config

_RUN = (
    "import sys; from kcompress.pipeline import PipelineConfig, run_pipeline; "
    "run_pipeline(PipelineConfig.from_file(sys.argv[1]), sys.argv[2], verbose=1)"
)


@pytest.mark.large
def test_killed_run_resumes_from_its_finished_stages(tmp_path):
    config = tiny_config(tmp_path)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    out = tmp_path / "run"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(config_path), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    marker = out / "02_distill" / "stage.json"
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the distill stage did not finish in 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "05_export").exists()
    finished_at = {name: (out / name / "stage.json").stat().st_mtime_ns for name in ("01_teacher", "02_distill")}

    result = run_pipeline(config, out, verbose=0)
    assert result.resumed[:2] == ("teacher", "distill")
    assert "export" not in result.resumed
    for name, stamp in finished_at.items():
        assert (out / name / "stage.json").stat().st_mtime_ns == stamp
    assert os.path.isfile(result.tflite_path)
    assert not [name for name in os.listdir(out) if name.endswith(".partial")]
