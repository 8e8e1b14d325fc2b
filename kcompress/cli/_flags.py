"""absl flag helpers: one `flags.FlagValues` per command, Keras-style errors.

Every value error reads like Keras' own:
``Expected --mode in ('float32', ...). Received: --mode='int4'``.
"""

import difflib

from absl import flags

from kcompress._errors import expected_error
from kcompress.cli._errors import UsageError


class _ChoiceParser(flags.EnumParser):
    """A string that must be one of `choices`."""

    def __init__(self, name, choices):
        super().__init__(list(choices))
        self.name = name

    def parse(self, argument):
        if argument not in self.enum_values:
            raise expected_error(f"--{self.name} in {tuple(self.enum_values)}", **{f"--{self.name}": argument})
        return argument


class _IntParser(flags.IntegerParser):
    """An integer ``>= minimum``."""

    def __init__(self, name, minimum):
        super().__init__(lower_bound=minimum)
        self.name = name

    def parse(self, argument):
        try:
            value = self.convert(argument)
        except (TypeError, ValueError):
            value = None
        if value is None or self.is_outside_bounds(value):
            raise expected_error(
                f"--{self.name} to be an integer >= {self.lower_bound}", **{f"--{self.name}": argument}
            )
        return value


class _ChoiceListParser(flags.ListParser):
    """Comma-separated names, each one of `choices`."""

    def __init__(self, name, choices):
        super().__init__()
        self.name = name
        self.choices = tuple(choices)

    def parse(self, argument):
        values = super().parse(argument)
        if any(value not in self.choices for value in values):
            raise expected_error(
                f"--{self.name} as comma-separated names among {self.choices}", **{f"--{self.name}": argument}
            )
        return values


def define_choice(flag_values, name, default, choices, help):
    """Defines ``--name`` taking one of `choices`; the help lists them."""
    flags.DEFINE(_ChoiceParser(name, choices), name, default, f"{help} One of: {', '.join(choices)}.", flag_values)


def define_choice_list(flag_values, name, choices, help):
    """Defines ``--name`` taking comma-separated names among `choices` (default: none)."""
    flags.DEFINE(
        _ChoiceListParser(name, choices),
        name,
        None,
        f"{help} Any of: {', '.join(choices)}.",
        flag_values,
        serializer=flags.CsvListSerializer(","),
    )


def define_int(flag_values, name, default, help, minimum):
    """Defines ``--name`` taking an integer ``>= minimum``."""
    flags.DEFINE(_IntParser(name, minimum), name, default, help, flag_values)


def define_string(flag_values, name, default, help):
    flags.DEFINE_string(name, default, help, flag_values=flag_values)


def define_bool(flag_values, name, default, help):
    flags.DEFINE_boolean(name, default, help, flag_values=flag_values)


def check_addresses(flag, value):
    """Raises `UsageError` unless `value` is ``host:port`` or comma-separated ``host:port`` items.

    Example:

    >>> check_addresses("--job-addresses", "10.0.0.1:1234,10.0.0.2:1234")
    >>> check_addresses("--job-addresses", "10.0.0.1")
    Traceback (most recent call last):
    ...
    kcompress.cli._errors.UsageError: Expected --job-addresses as host:port, or comma-separated host:port \
items. Received: --job-addresses='10.0.0.1'
    """
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(
                str(expected_error(f"{flag} as host:port, or comma-separated host:port items", **{flag: value}))
            )


_MISSING = "Missing value for flag "


def normalize(args):
    """Accepts ``--a_b`` for ``--a-b``: rewrites underscores in flag names (not values).

    Example:

    >>> normalize(["--allow_float_ops", "--out=my_file.tflite", "a_b", "--", "--x_y"])
    ['--allow-float-ops', '--out=my_file.tflite', 'a_b', '--', '--x_y']
    """
    result = []
    for i, arg in enumerate(args):
        if arg == "--":
            return result + list(args[i:])
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            arg = "--" + name.replace("_", "-") + sep + value
        result.append(arg)
    return result


def parse(flag_values, prog, args):
    """Parses `args` into `flag_values`; returns the positional arguments.

    Raises:
        UsageError: An unknown flag, a missing value or a bad value.
    """
    try:
        return flag_values([prog] + normalize(args))[1:]
    except flags.UnrecognizedFlagError as error:
        raise _unknown(flag_values, prog, error) from None
    except flags.IllegalFlagValueError as error:
        raise _illegal(flag_values, error) from None
    except flags.Error as error:
        text = str(error)
        if text.startswith(_MISSING):  # absl: "Missing value for flag --out".
            flag = text[len(_MISSING) :]
            raise UsageError(f"Expected a value after {flag}. Received: nothing. See `{prog} --help`.") from None
        raise UsageError(f"{text}. See `{prog} --help`.") from None
    except ValueError as error:  # absl: "--noquick=x does not take an argument".
        raise UsageError(f"{error}. See `{prog} --help`.") from None


def _unknown(flag_values, prog, error):
    name = error.flagname
    close = difflib.get_close_matches(name, list(flag_values), n=2)
    hint = f" (did you mean {' or '.join('--' + c for c in close)}?)" if close else ""
    return UsageError(f"{expected_error(f'a flag of `{prog}` (see --help)', flag='--' + name)}{hint}")


def _illegal(flag_values, error):
    cause = error.__context__
    if isinstance(cause, ValueError) and str(cause).startswith("Expected "):
        return UsageError(str(cause))
    message = str(error)
    name = message[len("flag --") :].split("=", 1)[0]
    value = message[len(f"flag --{name}=") : len(message) - len(f": {cause}")]
    flag = flag_values[name] if name in flag_values else None
    if flag is not None and flag.boolean:
        expectation = f"--{name} to be true or false (or --{name} / --no{name})"
    else:
        syntax = getattr(getattr(flag, "parser", None), "syntactic_help", "")
        expectation = f"--{name} to be {syntax}" if syntax else f"a valid value for --{name}"
    return UsageError(str(expected_error(expectation, **{f"--{name}": value})))


def help_text(flag_values):
    """Every flag with its help text and default, as absl renders them (module headers dropped)."""
    rendered = flag_values.get_help(include_special_flags=False)
    return "\n".join(line for line in rendered.splitlines() if line.startswith(" "))
