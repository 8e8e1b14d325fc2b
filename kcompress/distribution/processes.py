"""`join_processes`: one data-parallel group of processes, set up as Keras 3 expects it."""

import keras

from kcompress._errors import check_int, expected_error

# MultiWorkerMirroredStrategy fails in Keras 3's own `fit`, even for a plain MLP.
_UPSTREAM_BUG = "https://github.com/keras-team/keras/issues/20585"


def join_processes(job_addresses=None, num_processes=None, process_id=None):
    """Joins this process to a data-parallel group and makes it Keras' distribution.

    Call it at the start of the same script in every process, before any
    model is built. It calls `keras.distribution.initialize` and sets a
    `keras.distribution.DataParallel` over every device of every process,
    with ``auto_shard_dataset=False``: each process feeds its own part of
    the data (see `process_part`), and the global batch is the parts of all
    processes together. On CPUs, JAX's cross-process collectives go through
    gloo. Arguments left as None are read by Keras from the environment
    (``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES``,
    ``KERAS_DISTRIBUTION_PROCESS_ID``).

    Only the JAX backend: under TensorFlow, Keras 3's `fit` fails under
    `tf.distribute.MultiWorkerMirroredStrategy` (keras-team/keras#20585).

    Args:
        job_addresses: ``"host:port"`` of process 0 (the coordinator), or a
            comma-separated list of every process' address.
        num_processes: How many processes take part.
        process_id: This process' index, ``0 <= process_id < num_processes``.

    Returns:
        The `keras.distribution.DataParallel` now in effect.

    Example (one process per terminal, ``KERAS_BACKEND=jax``):

    ```python
    from kcompress import distribution, pruning

    distribution.join_processes("127.0.0.1:12345", num_processes=2, process_id=i)
    x, y = distribution.process_part(x, y)
    pruned = pruning.prune_low_magnitude(model)
    pruned.compile(...)
    pruned.fit(x, y, callbacks=[pruning.UpdatePruningStep()])
    if distribution.is_chief():
        pruning.strip_pruning(pruned).save("pruned.keras")
    ```
    """
    if num_processes is not None:
        num_processes = check_int("num_processes", num_processes, minimum=1)
    if process_id is not None:
        process_id = check_int("process_id", process_id, minimum=0)
        if num_processes is not None and process_id >= num_processes:
            raise expected_error(
                f"process_id in [0, {num_processes}) for num_processes={num_processes}", process_id=process_id
            )
    backend = keras.backend.backend()
    if backend != "jax":
        raise expected_error(
            "the JAX backend (KERAS_BACKEND=jax) to train over several processes: under TensorFlow, "
            f"Keras 3's fit fails under MultiWorkerMirroredStrategy ({_UPSTREAM_BUG})",
            backend=backend,
        )
    import jax

    # Cross-process collectives on CPU devices; GPUs and TPUs use their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(job_addresses, num_processes, process_id)
    data_parallel = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False
    )
    keras.distribution.set_distribution(data_parallel)
    return data_parallel


def is_chief():
    """Whether this process writes files: process 0 of the group, or the only process.

    Example:

    >>> is_chief()
    True
    """
    index, _ = _position()
    return index == 0


def process_count():
    """How many processes train together: ``jax.process_count()`` after `join_processes`, else 1.

    Example:

    >>> process_count()
    1
    """
    return _position()[1]


def wait_for_processes(name, timeout_seconds=3600):
    """Waits until every process of the group reaches the barrier `name` (at once with one process).

    A barrier of JAX's coordination service, not a collective: a process
    may wait here while the chief writes files for minutes. Every process
    must pass the same names in the same order.

    Example:

    >>> wait_for_processes("stage 1 written")
    """
    if process_count() == 1:
        return
    from jax._src import distributed

    distributed.global_state.client.wait_at_barrier(f"kcompress/{name}", int(timeout_seconds * 1000))


def process_part(*arrays):
    """This process' share of each array (or dict of arrays): every n-th row, from its index.

    With one process, the arrays come back as they are. Each process should
    then get the same number of rows, so that every step has a batch from
    every process: the shares differ by at most one row, and the longer ones
    lose their last row.

    Example:

    >>> import numpy as np
    >>> x, y = process_part(np.arange(6), np.arange(6) * 10)
    >>> x.tolist(), y.tolist()
    ([0, 1, 2, 3, 4, 5], [0, 10, 20, 30, 40, 50])
    """
    index, count = _position()
    parts = tuple(_part(a, index, count) for a in arrays)
    return parts[0] if len(parts) == 1 else parts


def _part(array, index, count):
    if isinstance(array, dict):
        return {key: _part(value, index, count) for key, value in array.items()}
    rows = len(array) // count * count
    return array[index:rows:count]


def _position():
    """``(process index, process count)``; ``(0, 1)`` outside a JAX process group."""
    if keras.backend.backend() != "jax":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()
