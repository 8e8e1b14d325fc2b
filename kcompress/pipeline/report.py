"""The run's report: a Markdown table per stage and a picture of accuracy vs size and latency."""

import io
import json
import os

from kcompress._atomic import write_atomic

_COLUMNS = ("stage", "params", "size (MB)", "gzipped (MB)", "accuracy", "latency (ms)", "measured on", "time (s)")
# The QAT stage has no file of its own to time: the export row is its `.tflite`.


def _cell(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def report_table(rows):
    """Markdown table, one line per stage.

    Example:

    >>> row = {"stage": "teacher", "params": 2_000_000, "size_mb": 8.0, "gzip_mb": 7.4,
    ...        "accuracy": 0.81, "latency_ms": 9.5, "latency_kind": "float32 .tflite", "seconds": 90}
    >>> print(report_table([row]).splitlines()[2])
    | teacher | 2.00M | 8.0 | 7.4 | 0.810 | 9.50 | float32 .tflite | 90 |
    """
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + " --- |" * len(_COLUMNS)]
    for row in rows:
        cells = [
            row["stage"],
            f"{row['params'] / 1e6:.2f}M",
            _cell(row["size_mb"], 1),
            _cell(row["gzip_mb"], 1),
            _cell(row["accuracy"], 3),
            _cell(row.get("latency_ms"), 2),
            row.get("latency_kind") or row.get("size_kind", ""),
            _cell(row.get("seconds"), 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, key, label in ((axes[0], "size_mb", "size (MB)"), (axes[1], "latency_ms", "latency (ms, batch 1)")):
        points = [row for row in rows if row.get(key) is not None]
        axis.plot([row[key] for row in points], [row["accuracy"] for row in points], "o-", color="tab:blue")
        for row in points:
            axis.annotate(row["stage"], (row[key], row["accuracy"]), textcoords="offset points", xytext=(5, 5))
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy")
        axis.grid(alpha=0.3)
    axes[0].set_title("accuracy vs size")
    axes[1].set_title("accuracy vs latency")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_atomic(path, lambda f: f.write(buffer.getvalue()))


def write_report(out, config, rows, tflite_path):
    """Writes ``report.md``, ``report.png`` and ``report.json``; returns ``(md, png, table)``."""
    table = report_table(rows)
    export = rows[-1]
    lines = [
        "# kcompress pipeline report",
        "",
        table,
        "",
        f"- Exported model: `{tflite_path}` ({export['mode']}, full integer: {export['full_integer']}).",
        f"- `.tflite` vs Keras agreement: {export['agreement_with_keras']:.3f}"
        + (
            ""
            if export.get("max_diff_in_steps") is None
            else f", max difference {export['max_diff_in_steps']:.1f} output steps"
        )
        + ".",
        f"- Edge TPU: {export['edgetpu_verdict']} ({export['edgetpu_mapped_ops']} of {export['total_ops']} ops "
        "would run on it; see `edgetpu.txt`).",
        "- Size and latency (LiteRT, batch 1, median) of each Keras stage are those of its float32 `.tflite`; "
        "the QAT stage's `.tflite` is the export row.",
        "",
        "Settings:",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
    ]
    md = os.path.join(out, "report.md")
    png = os.path.join(out, "report.png")
    write_atomic(md, lambda f: f.write(("\n".join(lines) + "\n").encode()))
    payload = json.dumps({"config": config.to_dict(), "rows": rows}, indent=2, default=float)
    write_atomic(os.path.join(out, "report.json"), lambda f: f.write(payload.encode()))
    _plot(rows, png)
    return md, png, table
