"""``python -m kcompress.cli``: the ``kcompress`` command."""

from kcompress.cli import run

if __name__ == "__main__":
    run()
