"""The top level: help, version, unknown commands, every command's help, the console script."""

import os
import subprocess
import sys

import pytest

from kcompress.cli.app import COMMANDS
from tests.cli.clihelpers import assert_usage_error

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_help_lists_every_command(cli):
    run = cli("--help")
    assert run.code == 0 and run.err == ""
    for name, command in COMMANDS.items():
        assert f"  {name}" in run.out and command.summary in run.out
    assert "exit codes" in run.out


def test_no_command_prints_help_and_exits_2(cli):
    run = cli()
    assert run.code == 2
    assert "commands:" in run.out


def test_version(cli):
    from kcompress import __version__

    run = cli("--version")
    assert run.code == 0 and run.out.strip() == f"kcompress {__version__}"


@pytest.mark.parametrize("argv", [("frob",), ("--frob",), ("help", "frob")])
def test_unknown_command_is_one_line_exit_2(cli, argv):
    assert_usage_error(cli(*argv), "kcompress: Expected", argv[-1])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_is_complete(cli, name):
    """Every flag, with its help text and its default, and the usage line."""
    command = COMMANDS[name]
    run = cli(name, "--help")
    assert run.code == 0 and run.err == ""
    assert run.out.startswith(f"usage: kcompress {name}")
    text = " ".join(run.out.split())
    flag_values = command.flag_values()
    assert len(flag_values) > 0
    for flag_name in flag_values:
        flag = flag_values[flag_name]
        assert f"--{flag_name}:" in text or f"--[no]{flag_name}:" in text
        assert " ".join(flag.help.split()) in text
        if flag.default is not None:
            assert f"(default: {flag.default_as_str})" in text
    assert cli("help", name).out == run.out
    assert cli(name, "-h").out == run.out


def test_underscore_flag_names_are_accepted(cli, tmp_path):
    run = cli("bench", str(tmp_path / "missing.tflite"), "--warm_up=1")
    assert_usage_error(run, "--warm-up", "did you mean --warmup")


def test_console_script_help():
    """The installed `kcompress` script, or `python -m kcompress.cli` if the package is not installed."""
    script = os.path.join(os.path.dirname(sys.executable), "kcompress")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "kcompress.cli"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command + ["--help"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "usage: kcompress <command>" in done.stdout
    for name in COMMANDS:
        assert f"  {name}" in done.stdout
    done = subprocess.run(command + ["frob"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("kcompress: Expected a command")
