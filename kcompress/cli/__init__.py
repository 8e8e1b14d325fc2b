"""The ``kcompress`` command line (absl): demo, compress, export, inspect, bench.

Each command is one module with one `Command`; `app` dispatches on the first
argument and each command parses the rest with its own `absl.flags.FlagValues`.
``python -m kcompress.cli`` is the same as the ``kcompress`` console script.
"""

from kcompress.cli.app import main, run

__all__ = ["main", "run"]
