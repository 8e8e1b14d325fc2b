"""``kcompress inspect``: what is inside a `.tflite`, and would it run on an Edge TPU."""

from kcompress.cli import _flags, _paths
from kcompress.cli._command import Command
from kcompress.cli._output import quiet


def _define(flag_values):
    _flags.define_bool(flag_values, "edgetpu-ops", False, "Also print where each op would run on an Edge TPU.")


def _execute(args, positional):
    path = _paths.tflite_file("path", positional[0])
    with quiet():
        import tflite_export

        described = tflite_export.describe(path)
        report = tflite_export.check_edgetpu(path)
    print(path)
    print(described)
    print()
    print(report)
    if args.edgetpu_ops:
        print()
        print(report.table())


COMMAND = Command(
    name="inspect",
    summary="Show a .tflite's size, inputs/outputs, ops with dtypes, and Edge TPU verdict.",
    description=(
        "Prints the size, inputs and outputs of a .tflite, a table of its ops with their input and output "
        "dtypes (tflite_export.describe), and the offline Edge TPU readiness report (tflite_export.check_edgetpu): "
        "a verdict, how many ops would map, and the first op that would fall back to the CPU."
    ),
    define=_define,
    execute=_execute,
    positional=("MODEL.tflite",),
    examples=("kcompress inspect m.tflite", "kcompress inspect m.tflite --edgetpu-ops"),
)
