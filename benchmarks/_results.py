"""Atomic writes of benchmark results to benchmarks/results/<name>.json/.md."""

import json
import os
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_results(name, result, table):
    """Writes ``<name>.json`` (the numbers) and ``<name>.md`` (the table)."""
    _write_atomic(RESULTS / f"{name}.json", json.dumps(result, indent=2, default=float) + "\n")
    _write_atomic(RESULTS / f"{name}.md", table + "\n")
    print(f"wrote {RESULTS / name}.json and .md")
