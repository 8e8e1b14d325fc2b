"""Where the time of an int8 MiniLM goes: single-op int8 models at MiniLM shapes.

LiteRT's Python API has no per-op profiler, so each op of the int8 MiniLM
graph (sequence length 64, hidden 384, 12 heads, FFN 1536) is converted
alone to an int8 `.tflite` and timed on LiteRT (2 threads); the time per op
times the op's count in the 6-layer model estimates its share. The
"XNNPACK" column says whether LiteRT's default CPU delegate takes the op;
ops it does not take run on LiteRT's built-in kernels (and split the
delegated graph). The FULLY_CONNECTED rows also time the same product in a
dynamic-range file, which is what the dynamic-range MiniLM runs for them.
The rows of ops XNNPACK has no int8 kernel for also time their form with
``convert(float_ops=...)`` (`tflite_export.float_ops`): DEQUANTIZE, the op
in float32, QUANTIZE, all three delegated.

The BATCH_MATMUL rows show what this profile found: XNNPACK runs an int8
matrix product only when its operands have zero point 0. With asymmetric
query/key/value ranges the 12 products of MiniLM fell back to the built-in
kernel, about 20x slower; `kcompress.quantization` now gives them symmetric
ranges. The SELECT_V2 and ADD rows show a second find: attention used to
mask its scores with a SELECT_V2 over every head, which XNNPACK does not
take; it now adds a bias selected on the mask alone, an ADD that XNNPACK
runs. The LayerNorm rows show a third: the L2_NORMALIZATION kernel LiteRT
runs on its built-in kernels is replaced by a sum of squares (BATCH_MATMUL),
one RSQRT per row and a MUL, of which only the RSQRT (64 values) is not
delegated.

Run: ``python benchmarks/int8_op_profile.py``. Writes
``benchmarks/results/int8_op_profile.json`` and ``.md``.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    import numpy as np
    import tensorflow as tf
    from _results import write_results

    from tflite_export import benchmark
    from tflite_export._runner import xnnpack_parts
    from tflite_export.float_ops import run_in_float

    fq = tf.quantization.fake_quant_with_min_max_vars
    rng = np.random.default_rng(0)

    def weights(n_in, n_out):
        w = rng.normal(size=(n_in, n_out)).astype("float32")
        step = np.abs(w).max(0) / 127
        return tf.constant(np.round(w / step) * step)

    w_qkv, w_up, w_down = weights(384, 384), weights(384, 1536), weights(1536, 384)

    def normalize_rows(x):
        """kcompress's int8 LayerNorm after the mean: rows times rsqrt of their sum of squares."""
        centered = fq(x, -3.0, 13.0)
        rows = tf.reshape(centered, [64, 1, 384])
        sums = fq(tf.reshape(tf.matmul(rows, rows, transpose_b=True), [1, 64, 1]), 0.0, 600.0)
        return fq(centered * fq(tf.math.rsqrt(tf.maximum(sums, 600.0 / 255)), 0.0, 0.2), -1.0, 1.0)

    cases = [
        ("FULLY_CONNECTED 384->384", [1, 64, 384], lambda x: fq(fq(x, -4.0, 4.0) @ w_qkv, -30.0, 30.0), 24),
        ("FULLY_CONNECTED 384->1536", [1, 64, 384], lambda x: fq(fq(x, -4.0, 4.0) @ w_up, -30.0, 30.0), 6),
        ("FULLY_CONNECTED 1536->384", [1, 64, 1536], lambda x: fq(fq(x, -4.0, 4.0) @ w_down, -30.0, 30.0), 6),
        (
            "BATCH_MATMUL 64x32x64, zero point 0",
            [1, 12, 64, 32],
            lambda x: fq(
                tf.matmul(fq(x, -4.0, 4.0 * 127 / 128), fq(x, -4.0, 4.0 * 127 / 128), transpose_b=True), -30.0, 30.0
            ),
            12,
        ),
        (
            "BATCH_MATMUL 64x32x64, zero point != 0 (before)",
            [1, 12, 64, 32],
            lambda x: fq(tf.matmul(fq(x, -3.0, 5.0), fq(x, -3.0, 5.0), transpose_b=True), -30.0, 30.0),
            0,
        ),
        ("SOFTMAX 12x64x64", [1, 12, 64, 64], lambda x: fq(tf.nn.softmax(fq(x, -8.0, 8.0)), 0.0, 255 / 256), 6),
        ("GELU 64x1536", [1, 64, 1536], lambda x: fq(tf.nn.gelu(fq(x, -8.0, 8.0)), -1.0, 8.0), 6),
        (
            "L2_NORMALIZATION 64x384 (before)",
            [1, 64, 384],
            lambda x: fq(tf.math.l2_normalize(fq(x, -8.0, 8.0), -1), -1.0, 127 / 128),
            0,
        ),
        ("LayerNorm sum of squares, RSQRT, MUL 64x384", [1, 64, 384], normalize_rows, 13),
        (
            "MEAN + SUB 64x384",
            [1, 64, 384],
            lambda x: fq(fq(x, -8.0, 8.0) - fq(tf.reduce_mean(fq(x, -8.0, 8.0), -1, keepdims=True), -8.0, 8.0), -8, 8),
            13,
        ),
        (
            "SELECT_V2 mask 12x64x64 (before)",
            [[1, 12, 64, 64], ([1, 1, 64, 64], tf.bool)],
            lambda x, mask: fq(tf.where(mask, fq(x, -8.0, 8.0), -1e9), -8.0, 8.0),
            0,
        ),
        (
            "ADD mask bias 12x64x64",
            [[1, 12, 64, 64], [1, 1, 64, 64]],
            lambda x, bias: fq(fq(x, -8.0, 8.0) + fq(bias, -32.0, 31.75), -8.0, 8.0),
            6,
        ),
        (
            "TRANSPOSE 64x12x32",
            [1, 64, 12, 32],
            lambda x: fq(tf.transpose(fq(x, -4.0, 4.0), [0, 2, 1, 3]), -4.0, 4.0),
            30,
        ),
    ]
    # The same products in a dynamic-range file (float activations, int8 weights): what the
    # dynamic-range MiniLM row runs for its FULLY_CONNECTED ops.
    dynamic_products = {
        "FULLY_CONNECTED 384->384": lambda x: x @ w_qkv,
        "FULLY_CONNECTED 384->1536": lambda x: x @ w_up,
        "FULLY_CONNECTED 1536->384": lambda x: x @ w_down,
    }

    # The same ops computed in float32 between int8 tensors (the "for CPU" files of tflite_minilm).
    float_forms = {
        "SOFTMAX 12x64x64": ["SOFTMAX"],
        "GELU 64x1536": ["GELU"],
        "LayerNorm sum of squares, RSQRT, MUL 64x384": ["MAXIMUM", "RSQRT"],
        "L2_NORMALIZATION 64x384 (before)": [],
    }

    def convert(fn, shapes, int8):
        """An int8 (or dynamic-range) `.tflite` of `fn`; `shapes` is one input shape or a list of
        shapes and ``(shape, dtype)`` pairs."""
        shapes = shapes if isinstance(shapes[0], (list, tuple)) else [shapes]
        specs = [tf.TensorSpec(*s) if isinstance(s, tuple) else tf.TensorSpec(s, tf.float32) for s in shapes]
        f = tf.function(fn, input_signature=specs)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()

    rows = []
    for name, shape, fn, count in cases:
        flatbuffer = convert(fn, shape, int8=True)
        latency = benchmark(flatbuffer, threads=2, runs=300, warmup=20)
        delegated = bool(xnnpack_parts(flatbuffer, num_threads=2))
        dynamic_us = None
        if name in dynamic_products:
            dynamic = benchmark(convert(dynamic_products[name], shape, int8=False), threads=2, runs=300, warmup=20)
            dynamic_us = dynamic.median_ms * 1000
        float_us = None
        if float_forms.get(name):
            float_form, _ = run_in_float(flatbuffer, float_forms[name])
            float_us = benchmark(float_form, threads=2, runs=300, warmup=20).median_ms * 1000
        rows.append(
            {
                "op": name,
                "us": latency.median_ms * 1000,
                "count": count,
                "ms": latency.median_ms * count,
                "xnnpack": delegated,
                "dynamic_range_us": dynamic_us,
                "float_ops_us": float_us,
            }
        )
        print(
            f"{name:48s} {rows[-1]['us']:8.1f} us x{count:3d} = {rows[-1]['ms']:6.2f} ms  XNNPACK {delegated}"
            + (f"  (dynamic-range {dynamic_us:.1f} us)" if dynamic_us is not None else "")
            + (f"  (float_ops {float_us:.1f} us)" if float_us is not None else ""),
            flush=True,
        )
    total = sum(r["ms"] for r in rows)
    lines = [
        "| op (int8) | XNNPACK | µs per op | count in MiniLM | ms in MiniLM | share | dynamic-range µs | "
        "float_ops µs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(rows, key=lambda r: -r["ms"]):
        lines.append(
            f"| {r['op']} | {'yes' if r['xnnpack'] else 'no'} | {r['us']:.1f} | {r['count']} | {r['ms']:.2f} | "
            f"{r['ms'] / total:.0%} | "
            + (f"{r['dynamic_range_us']:.1f} |" if r["dynamic_range_us"] is not None else "|")
            + (f" {r['float_ops_us']:.1f} |" if r["float_ops_us"] is not None else " |")
        )
    lines.append(f"| total of these ops | | | | {total:.2f} | | | |")
    table = "\n".join(lines)
    print("\n" + table)
    write_results("int8_op_profile", {"rows": rows, "total_ms": total}, table)


if __name__ == "__main__":
    main()
