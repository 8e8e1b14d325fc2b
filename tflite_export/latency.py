"""How long one `.tflite` inference takes with the LiteRT interpreter on this CPU.

`benchmark` feeds one example once, then times `invoke()` alone with
`time.perf_counter`: the number that matters on a device, without Python
data preparation. Compare numbers from the same run and machine only.
"""

import dataclasses
import time

import numpy as np

from kcompress._errors import check_int
from tflite_export._runner import Runner


@dataclasses.dataclass(frozen=True)
class Latency:
    """Timings of `invoke()`, in milliseconds.

    Attributes:
        median_ms: Median time of one inference.
        p90_ms: 90th percentile.
        mean_ms: Mean.
        runs: Number of timed runs.
        threads: Interpreter threads.
    """

    median_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    threads: int

    def __str__(self):
        return (
            f"median {self.median_ms:.3f} ms, p90 {self.p90_ms:.3f} ms, mean {self.mean_ms:.3f} ms"
            f" ({self.runs} runs, {self.threads} threads)"
        )


def random_inputs(runner, seed=0):
    """One valid random example per input, already in the interpreter's dtypes.

    Integer inputs named like masks get ones, other integer inputs (token
    and segment ids) zeros: valid indices for any embedding table, and
    latency does not depend on which ids are looked up. int8/uint8/int16
    quantized inputs get random raw values, float inputs uniform [0, 1).
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, details in runner.input_details.items():
        dtype, shape = np.dtype(details["dtype"]), tuple(int(d) for d in details["shape"])
        if dtype.kind == "f":
            feeds[name] = rng.random(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.random(shape) < 0.5
        elif dtype.name in ("int32", "int64"):
            feeds[name] = np.full(shape, 1 if "mask" in name.lower() else 0, dtype)
        else:
            info = np.iinfo(dtype)
            feeds[name] = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return feeds


def benchmark(path, threads=2, runs=50, warmup=5, inputs=None):
    """Times `invoke()` of a `.tflite` with the LiteRT interpreter.

    Args:
        path: Path to a `.tflite` file, or its bytes.
        threads: Interpreter threads (>= 1).
        runs: Timed runs (>= 1).
        warmup: Untimed runs first (>= 0).
        inputs: One example (an array, or a dict by input name) in the
            model's batch; float values are quantized for int8 models.
            Random valid inputs by default (see `random_inputs`).

    Returns:
        A `Latency`.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: tf.nn.relu(x), input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    >>> tflite = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()
    >>> result = benchmark(tflite, runs=5)
    >>> result.runs, result.threads, result.median_ms > 0
    (5, 2, True)
    """
    threads = check_int("threads", threads, minimum=1)
    runs = check_int("runs", runs, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    runner = _ready_runner(path, threads, warmup, inputs)
    return _latency(_time(runner, runs), threads)


def compare(paths, threads=2, runs=50, rounds=5, warmup=5):
    """Times several `.tflite` files in interleaved rounds, for fair ratios.

    Each round times ``runs // rounds`` invocations of every file in turn,
    so a slow spell of a shared machine hits all files alike instead of
    whichever one happened to be running.

    Args:
        paths: Paths (or bytes) of the files; a dict keeps its keys.
        threads: Interpreter threads (>= 1).
        runs: Timed runs per file (>= rounds).
        rounds: Number of interleaved rounds (>= 1).
        warmup: Untimed runs of each file first.

    Returns:
        A dict from each path (or key) to its `Latency`.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: tf.nn.relu(x), input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    >>> tflite = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()
    >>> result = compare({"a": tflite, "b": tflite}, runs=4, rounds=2)
    >>> sorted(result), result["a"].runs
    (['a', 'b'], 4)
    """
    threads = check_int("threads", threads, minimum=1)
    rounds = check_int("rounds", rounds, minimum=1)
    runs = check_int("runs", runs, minimum=rounds)
    warmup = check_int("warmup", warmup, minimum=0)
    named = dict(paths) if isinstance(paths, dict) else {path: path for path in paths}
    runners = {key: _ready_runner(path, threads, warmup, None) for key, path in named.items()}
    times = {key: [] for key in named}
    for round_index in range(rounds):
        count = runs // rounds + (1 if round_index < runs % rounds else 0)
        for key, runner in runners.items():
            times[key].append(_time(runner, count))
    return {key: _latency(np.concatenate(parts), threads) for key, parts in times.items()}


def _ready_runner(path, threads, warmup, inputs):
    runner = Runner(path, num_threads=threads)
    runner.set_inputs(random_inputs(runner) if inputs is None else runner.prepare(inputs))
    for _ in range(warmup):
        runner.invoke()
    return runner


def _time(runner, runs):
    """Milliseconds of `runs` invocations."""
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        runner.invoke()
        times[i] = time.perf_counter() - start
    return times * 1000.0


def _latency(times, threads):
    return Latency(
        median_ms=float(np.median(times)),
        p90_ms=float(np.percentile(times, 90)),
        mean_ms=float(times.mean()),
        runs=int(times.size),
        threads=threads,
    )
