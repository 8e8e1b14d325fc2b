"""``kcompress demo``: the whole pipeline on the shipped MiniLM and rotten-tomatoes snippets."""

import os

from kcompress.cli import _flags, _paths, _pipeline
from kcompress.cli._command import Command


def _define(flag_values):
    _flags.define_bool(flag_values, "quick", False, "Tiny settings: a smoke run of every stage in a few minutes.")
    _flags.define_string(
        flag_values,
        "out",
        None,
        "Run folder: models, report.md, report.png. An interrupted run resumes from it. "
        "Default: runs/demo (runs/demo-quick with --quick).",
    )


def _execute(args, positional):
    out = _paths.output_dir("--out", args.out or os.path.join("runs", "demo-quick" if args.quick else "demo"))
    pipeline = _pipeline.load()
    config = pipeline.PipelineConfig.demo(quick=args.quick)
    os.makedirs(out, exist_ok=True)
    _pipeline.show(pipeline.run_pipeline(config, out, verbose=1))


COMMAND = Command(
    name="demo",
    summary="Run the pipeline on the shipped MiniLM and rotten-tomatoes snippets.",
    description=(
        "Fine-tunes the shipped all-MiniLM-L6-v2 on rotten-tomatoes snippets, then distills, prunes, trains "
        "with quantization-aware training and exports an int8 .tflite, verifying and timing it (kcompress.pipeline). "
        "Prints the report table and the paths of the .tflite and report.png. Runs offline."
    ),
    define=_define,
    execute=_execute,
    examples=("kcompress demo --quick", "kcompress demo --out runs/minilm"),
)
