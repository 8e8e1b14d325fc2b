"""`Command`: one subcommand (its flags, its work) and `invoke`, which runs it.

`invoke` gives every command the same behaviour: ``-h``/``--help`` prints
the complete help; flags are parsed by a fresh `absl.flags.FlagValues` (so
commands never share flags); wrong usage and failures become one line on
stderr with exit code 2 or 1 (see `kcompress.cli._errors`).
"""

import dataclasses
import textwrap
import types

from absl import flags

from kcompress._errors import expected_error
from kcompress.cli import _flags
from kcompress.cli._errors import UsageError, report

PROGRAM = "kcompress"
_HELP = ("-h", "--help", "-help", "--helpfull")


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand of ``kcompress``.

    Attributes:
        name: What the user types, e.g. ``"export"``.
        summary: One line for ``kcompress --help``.
        description: A paragraph for ``kcompress <name> --help``.
        define: ``define(flag_values)`` defines the command's flags.
        execute: ``execute(args, positional)`` does the work; `args` has one
            attribute per flag (``--allow-float-ops`` -> ``args.allow_float_ops``).
            Returns an exit code or ``None`` (0).
        positional: Names of the positional arguments, e.g. ``("MODEL.tflite",)``.
        required: Flags that must be given.
        examples: Example command lines for the help.
    """

    name: str
    summary: str
    description: str
    define: object
    execute: object
    positional: tuple = ()
    required: tuple = ()
    examples: tuple = ()

    @property
    def prog(self):
        return f"{PROGRAM} {self.name}"

    def flag_values(self):
        """A fresh `flags.FlagValues` holding this command's flags."""
        flag_values = flags.FlagValues()
        self.define(flag_values)
        for name in self.required:
            flag_values[name].help += " (required)"
        return flag_values

    def usage(self):
        flag_values = self.flag_values()
        required = " ".join(f"--{name}={name.upper()}" for name in self.required)
        optional = " [flags]" if len(flag_values) > len(self.required) else ""
        return " ".join(part for part in (self.prog, *self.positional, required) if part) + optional

    def help(self):
        lines = [f"usage: {self.usage()}", "", textwrap.fill(self.description, width=80)]
        listed = _flags.help_text(self.flag_values())
        if listed:
            lines += ["", "flags:", listed]
        if self.examples:
            lines += ["", "examples:"] + [f"  {example}" for example in self.examples]
        return "\n".join(lines)


def invoke(command, args):
    """Runs `command` on its arguments (after the command name); returns the exit code."""
    try:
        if any(arg in _HELP for arg in _before_double_dash(args)):
            print(command.help())
            return 0
        parsed, positional = parse(command, args)
        code = command.execute(parsed, positional)
        return 0 if code is None else int(code)
    except (Exception, KeyboardInterrupt) as error:
        return report(command.prog, error)


def parse(command, args):
    """Returns ``(args namespace, positional list)``; raises `UsageError` on bad usage."""
    flag_values = command.flag_values()
    positional = _flags.parse(flag_values, command.prog, list(args))
    if len(positional) != len(command.positional):
        wanted = f"the argument {' '.join(command.positional)}" if command.positional else "no positional argument"
        raise UsageError(f"{expected_error(f'{wanted} after `{command.prog}` (see --help)', arguments=positional)}")
    for name in command.required:
        if flag_values[name].value in (None, ""):
            raise UsageError(f"Expected a value for --{name} (see `{command.prog} --help`). Received: no --{name}")
    values = {name.replace("-", "_"): flag_values[name].value for name in flag_values}
    return types.SimpleNamespace(**values), positional


def _before_double_dash(args):
    return args[: args.index("--")] if "--" in args else args
