"""``kcompress bench``: LiteRT latency of a `.tflite` on this CPU."""

from kcompress.cli import _flags, _paths
from kcompress.cli._command import Command
from kcompress.cli._output import Steps, quiet


def _define(flag_values):
    _flags.define_int(flag_values, "threads", 2, "LiteRT interpreter threads.", minimum=1)
    _flags.define_int(flag_values, "runs", 50, "Timed runs.", minimum=1)
    _flags.define_int(flag_values, "warmup", 5, "Untimed runs first.", minimum=0)


def _execute(args, positional):
    path = _paths.tflite_file("path", positional[0])
    Steps(1)(f"timing {args.runs} runs of {path} on {args.threads} threads (after {args.warmup} warm-up runs)")
    with quiet():
        import tflite_export

        latency = tflite_export.benchmark(path, threads=args.threads, runs=args.runs, warmup=args.warmup)
    print(f"{path}: {latency}")


COMMAND = Command(
    name="bench",
    summary="Time a .tflite with the LiteRT interpreter: median and p90 latency.",
    description=(
        "Times invoke() of a .tflite with the LiteRT interpreter on random valid inputs (tflite_export.benchmark) "
        "and prints the median, p90 and mean latency in milliseconds. Compare numbers from the same machine only."
    ),
    define=_define,
    execute=_execute,
    positional=("MODEL.tflite",),
    examples=("kcompress bench m.tflite", "kcompress bench m.tflite --threads 1 --runs 200"),
)
