"""Where the int8 time goes, in place: one kind of op at a time moved to float32 in a whole MiniLM graph.

`int8_op_profile.py` times each op alone; inside the model an op that
XNNPACK does not take also splits the delegated graph, so its cost there can
differ. This builds a MiniLM-shaped BERT (6 layers, hidden 384, 12 heads,
FFN 1536; random weights: latency does not depend on them), quantizes and
calibrates it with kcompress on random token ids, converts it to full int8
(sequence length 64, batch 1), and then writes one copy per row with
`tflite_export.float_ops.run_in_float` applied to the named ops only. All
copies are timed in interleaved rounds on LiteRT (2 threads), so each row's
difference to the full-int8 row is what those ops cost in int8 beyond their
float32 form.

Run: ``python benchmarks/int8_in_place.py [--runs 50] [--rounds 8]``. Writes
``benchmarks/results/int8_in_place.json`` and ``.md``.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SEQUENCE_LENGTH = 64
ROWS = (
    ("full int8", ()),
    ("SOFTMAX in float32", ("SOFTMAX",)),
    ("GELU in float32", ("GELU",)),
    ("LayerNorm MAXIMUM, RSQRT in float32", ("MAXIMUM", "RSQRT")),
    ("SOFTMAX, GELU in float32", ("SOFTMAX", "GELU")),
    ("all four in float32 (convert float_ops)", ("GELU", "MAXIMUM", "RSQRT", "SOFTMAX")),
)


def minilm_shaped_int8(path, calibration_size=16, seed=0):
    """Writes a calibrated full-int8 MiniLM-shaped BERT classifier to `path`."""
    import keras
    import keras_hub
    import numpy as np

    from kcompress.quantization import calibrate, quantize_model
    from tflite_export import convert

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522,
        num_layers=6,
        num_heads=12,
        hidden_dim=384,
        intermediate_dim=1536,
        max_sequence_length=512,
    )
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    rng = np.random.default_rng(seed)
    mask = (np.arange(SEQUENCE_LENGTH) < rng.integers(8, SEQUENCE_LENGTH, (calibration_size, 1))).astype("int32")
    x = {
        "token_ids": rng.integers(1, 30522, mask.shape).astype("int32") * mask,
        "segment_ids": np.zeros_like(mask),
        "padding_mask": mask,
    }
    qat = quantize_model(model)
    calibrate(qat, x)
    return convert(qat, path, mode="int8", input_shapes=(SEQUENCE_LENGTH,))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from _results import write_results

    from tflite_export import compare
    from tflite_export._runner import xnnpack_parts
    from tflite_export.float_ops import run_in_float

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = minilm_shaped_int8(Path(tmp) / "int8.tflite")
        print(source, flush=True)
        flatbuffer = Path(source.path).read_bytes()
        paths, parts = {}, {}
        for i, (name, ops) in enumerate(ROWS):
            path = paths[name] = Path(tmp) / f"row_{i}.tflite"
            path.write_bytes(run_in_float(flatbuffer, ops)[0] if ops else flatbuffer)
            parts[name] = len(xnnpack_parts(path, num_threads=args.threads))
        latencies = compare(paths, threads=args.threads, runs=args.runs, rounds=args.rounds, warmup=10)
    base = latencies["full int8"].median_ms
    rows = []
    for name, ops in ROWS:
        latency = latencies[name]
        rows.append(
            {
                "model": name,
                "float_ops": list(ops),
                "median_ms": latency.median_ms,
                "p90_ms": latency.p90_ms,
                "saved_ms": base - latency.median_ms,
                "xnnpack_parts": parts[name],
            }
        )
        print(f"{name:>40}: {latency}  ({parts[name]} XNNPACK parts)", flush=True)
    table = "\n".join(
        [
            f"MiniLM-shaped int8 BERT (random weights, sequence length {SEQUENCE_LENGTH}, batch 1, "
            f"{args.threads} threads); {args.rounds} interleaved rounds of {args.runs} runs.",
            "",
            "| file | median (ms) | p90 (ms) | saved vs full int8 (ms) | XNNPACK parts |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| {r['model']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['saved_ms']:.2f} | "
                f"{r['xnnpack_parts']} |"
                for r in rows
            ),
        ]
    )
    result = {"rows": rows, "seconds": time.perf_counter() - started, **vars(args)}
    write_results("int8_in_place", result, table)


if __name__ == "__main__":
    main()
