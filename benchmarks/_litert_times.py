"""Median `invoke()` time of `.tflite` files, interleaved; imports only NumPy and ai_edge_litert.

`sparse_latency.py` runs it under ``qemu-x86_64 -cpu Nehalem``, an x86 CPU
without AVX, where XNNPACK does use its sparse kernels (TensorFlow itself
needs AVX, hence a script that does not import it). Prints one JSON line:
``{path: median milliseconds}``.

Run: ``python benchmarks/_litert_times.py [--runs 5] [--threads 1] FILE.tflite ...``.
"""

import argparse
import json
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    interpreters = {}
    for path in args.paths:
        interpreter = Interpreter(model_path=path, num_threads=args.threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            shape, dtype = detail["shape"], np.dtype(detail["dtype"])
            interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(shape).astype(dtype))
        interpreter.invoke()  # Warm-up: XNNPACK packs the weights on the first run.
        interpreters[path] = interpreter
    times = {path: [] for path in args.paths}
    for _ in range(args.runs):
        for path, interpreter in interpreters.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[path].append((time.perf_counter() - start) * 1e3)
    print(json.dumps({path: float(np.median(t)) for path, t in times.items()}))


if __name__ == "__main__":
    main()
