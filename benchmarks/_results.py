"""Atomic writes of benchmark results to benchmarks/results/<name>.json/.md."""

import json
from pathlib import Path

from kcompress._atomic import write_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(text.encode()))


def write_results(name, result, table):
    """Writes ``<name>.json`` (the numbers) and ``<name>.md`` (the table)."""
    _write_atomic(RESULTS / f"{name}.json", json.dumps(result, indent=2, default=float) + "\n")
    _write_atomic(RESULTS / f"{name}.md", table + "\n")
    print(f"wrote {RESULTS / name}.json and .md")
