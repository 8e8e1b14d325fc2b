"""Assertions shared by the CLI tests."""


def assert_usage_error(run, *fragments, code=2):
    """One line on stderr, with every fragment, no traceback, the given exit code."""
    assert run.code == code, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
