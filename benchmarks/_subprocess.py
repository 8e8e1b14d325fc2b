"""Runs baselines that need a separate Python process.

tensorflow-model-optimization needs legacy Keras (``TF_USE_LEGACY_KERAS=1``),
which is a process-wide switch that would break Keras 3 in the benchmark
process. The tfmot baseline therefore runs in a child interpreter and reports
its result as one JSON line on stdout.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

_TFMOT_SCRIPT = Path(__file__).with_name("_tfmot_baseline.py")
_TFMOT_TASKS = ("plain", "prune", "qat")
_STDERR_TAIL_CHARS = 4000


def _tail(text, limit=_STDERR_TAIL_CHARS):
    """Returns the last ``limit`` characters of ``text`` (str, bytes or None)."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text[-limit:]


def run_tfmot_baseline(
    task: str,
    *,
    epochs: int,
    batch_size: int,
    samples: int,
    seed: int = 0,
    repeats: int = 1,
    alternate: bool = False,
    timeout: float = 1800,
) -> dict:
    """Runs ``_tfmot_baseline.py`` in a subprocess and returns its JSON result.

    Args:
        task: One of ``"plain"``, ``"prune"`` or ``"qat"``.
        epochs: Training epochs per repeat (>= 2; the first one is warm-up).
        batch_size: Training batch size.
        samples: Number of random training samples.
        seed: Seed for the data and weight initialisation.
        repeats: Number of fresh fits; the fastest median epoch is reported.
        alternate: Fit a plain model and the task's one epoch each in turn;
            the result is ``{"runs": {"plain": row, task: row}}``.
        timeout: Seconds before the child process is killed.

    Returns:
        The parsed result dict, or a dict with a ``"skipped"`` reason if
        tensorflow-model-optimization is not installed.

    Raises:
        ValueError: If ``task`` is unknown.
        RuntimeError: If the subprocess fails, times out or prints no JSON.
    """
    if task not in _TFMOT_TASKS:
        raise ValueError(f"task must be one of {_TFMOT_TASKS}, got {task!r}")
    # find_spec locates the package without importing it (importing tfmot
    # here could pull legacy Keras into this Keras 3 process).
    if importlib.util.find_spec("tensorflow_model_optimization") is None:
        return {
            "framework": "tfmot",
            "task": task,
            "skipped": "tensorflow-model-optimization not installed (pip install -e .[bench])",
        }

    cmd = [
        sys.executable,
        str(_TFMOT_SCRIPT),
        "--task",
        task,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--samples",
        str(samples),
        "--seed",
        str(seed),
        "--repeats",
        str(repeats),
        *(["--alternate"] if alternate else []),
    ]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(
            f"tfmot baseline {task!r} timed out after {timeout}s; stderr tail:\n{_tail(e.stderr)}"
        ) from e
    if proc.returncode != 0:
        raise RuntimeError(
            f"tfmot baseline {task!r} failed with exit code {proc.returncode}; stderr tail:\n{_tail(proc.stderr)}"
        )
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    raise RuntimeError(
        f"tfmot baseline {task!r} printed no JSON result; stdout tail:\n"
        f"{_tail(proc.stdout)}\nstderr tail:\n{_tail(proc.stderr)}"
    )


def run_tfmot_baselines(args, tasks):
    """tfmot's side of an overhead script: ``{name: [row of each repeat]}`` for ``("plain", task)``.

    Each repeat is one child process fitting a fresh plain tf_keras model
    and the task's model one epoch each in turn (``--alternate``), as the
    Keras 3 side does (`_overhead.alternating_fits`).
    """
    task = tasks[-1]
    rows = []
    for repeat in range(args.repeats):
        result = run_tfmot_baseline(
            task,
            epochs=args.epochs,
            batch_size=args.batch_size,
            samples=args.samples,
            seed=args.seed + repeat,
            alternate=True,
        )
        rows.append(result["runs"] if "runs" in result else {"plain": result, task: result})
    return {name: [row[name] for row in rows] for name in ("plain", task)}
