"""Data-parallel training over several processes with Keras 3's own `keras.distribution`.

Pruning, clustering and distillation train this way under the JAX backend:
every process runs the same script on its own part of the data, gradients
are averaged across processes, and every process ends with the same
weights and masks. `join_processes` does the setup; `is_chief` names the
one process that writes files.
"""

from kcompress.distribution.processes import (
    is_chief,
    join_processes,
    process_count,
    process_part,
    wait_for_processes,
)

__all__ = ["is_chief", "join_processes", "process_count", "process_part", "wait_for_processes"]
