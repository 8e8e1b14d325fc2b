"""One process of the two-process pipeline test.

Run as ``KERAS_BACKEND=jax python -m tests.pipeline.two_process_worker ADDRESS PROCESS_ID CONFIG OUT``;
prints one JSON line: the stages of its result, whether it is the chief, a digest of the final model's weights,
and the paths in the run folder it wrote (opened for writing, created, renamed or removed).
"""

import hashlib
import json
import os
import sys

_CHANGES = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree")


def record_writes(out):
    """A list that an audit hook fills with every path under `out` this process writes."""
    root = os.path.abspath(out)
    writes = []

    def under_out(path):
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(os.fspath(path)).startswith(root)

    def hook(event, args):
        if event == "open" and len(args) == 3:
            path, mode, flags = args
            writing = any(c in (mode or "") for c in "wax+") or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and under_out(path):
                writes.append(os.fspath(path))
        elif event in _CHANGES and args and any(under_out(a) for a in args[:2]):
            writes.append(os.fspath(args[0]))

    sys.addaudithook(hook)
    return writes


def main(address, process_id, config_path, out):
    import numpy as np

    from kcompress import distribution
    from kcompress.pipeline import PipelineConfig, run_pipeline

    distribution.join_processes(address, num_processes=2, process_id=process_id)
    writes = record_writes(out)
    verbose = int(os.environ.get("KCOMPRESS_TEST_VERBOSE", "0"))
    result = run_pipeline(PipelineConfig.from_file(config_path), out, verbose=verbose)
    weights = b"".join(np.asarray(v.value).tobytes() for v in result.model.weights)
    print(
        json.dumps(
            {
                "process": process_id,
                "is_chief": distribution.is_chief(),
                "stages": [row["stage"] for row in result.rows],
                "tflite": result.tflite_path,
                "resumed": list(result.resumed),
                "weights": hashlib.sha1(weights).hexdigest(),
                "writes": writes,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
