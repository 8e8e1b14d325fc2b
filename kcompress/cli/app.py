"""``kcompress <command> [flags]``: the dispatch table and the top-level help.

``main(argv)`` returns the exit code (``argv[0]`` is the program name, as in
`absl.app`); ``run()`` is the console script: it exits with that code.
"""

import sys

from kcompress.cli import bench, compress, demo, export, inspect
from kcompress.cli._command import PROGRAM, invoke
from kcompress.cli._errors import USAGE_EXIT_CODE, UsageError, report

COMMANDS = {module.COMMAND.name: module.COMMAND for module in (demo, compress, export, inspect, bench)}
_HELP = ("-h", "--help", "-help", "--helpfull", "help")


def main(argv=None):
    """Runs one command line; returns its exit code.

    Args:
        argv: ``[program, command, *args]``; `sys.argv` by default.

    Example:

    >>> main(["kcompress", "--version"])  # doctest: +ELLIPSIS
    kcompress ...
    0
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2:
        print(help_text())
        return USAGE_EXIT_CODE
    name, args = argv[1], argv[2:]
    if name in _HELP:
        return _help(args)
    if name == "--version":
        from kcompress import __version__

        print(f"{PROGRAM} {__version__}")
        return 0
    if name not in COMMANDS:
        what = "a flag" if name.startswith("-") else "a command"
        error = UsageError(f"Expected {what} in ({', '.join(COMMANDS)}) first. Received: {name!r}. See --help.")
        return report(PROGRAM, error)
    return invoke(COMMANDS[name], args)


def run():
    """The ``kcompress`` console script."""
    sys.exit(main())


def _help(args):
    """``kcompress --help`` or ``kcompress help <command>``."""
    if args and args[0] in COMMANDS:
        print(COMMANDS[args[0]].help())
        return 0
    if args:
        return report(PROGRAM, UsageError(f"Expected a command in ({', '.join(COMMANDS)}). Received: {args[0]!r}"))
    print(help_text())
    return 0


def help_text():
    """The top-level help: every command with its summary, and the exit codes."""
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"usage: {PROGRAM} <command> [flags]",
        "",
        "Compress a Keras model (prune, quantize, distill) and export it to TFLite.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()),
        "",
        f"`{PROGRAM} <command> --help` lists the command's flags with their defaults.",
        f"`{PROGRAM} --version` prints the version.",
        "",
        "exit codes: 0 done; 1 the command failed (e.g. the model does not convert to full int8);",
        "2 wrong usage (unknown command or flag, bad value, missing or unreadable file, invalid config);",
        "130 interrupted. Errors are one line on stderr; KCOMPRESS_DEBUG=1 adds tracebacks and TensorFlow logs.",
    ]
    return "\n".join(lines)
