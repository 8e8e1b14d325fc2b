"""`run_in_float` / `convert(float_ops=...)`: int8 SOFTMAX, GELU, RSQRT computed in float32 for CPUs."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompress.quantization import calibrate, quantize_model
from tests.helpers import mlp
from tests.quantization.qhelpers import fit
from tflite_export import check_edgetpu, convert, describe
from tflite_export._runner import make_interpreter, xnnpack_parts
from tflite_export.float_ops import FLOAT_OPS, check_float_ops, run_in_float

fake_quant = tf.quantization.fake_quant_with_min_max_vars


def single_op(fn, shape, input_range):
    """An int8 `.tflite` of ``fn`` between two fake-quant ranges (the QAT form), int8 in and out."""
    low, high = input_range
    function = tf.function(lambda x: fn(fake_quant(x, low, high)), input_signature=[tf.TensorSpec(shape)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def softmax(x):
    return fake_quant(tf.nn.softmax(x), 0.0, 255 / 256)


def gelu(x):
    return fake_quant(tf.nn.gelu(x), -0.25, 8.0)


def inverse_sqrt(x):
    return fake_quant(tf.math.rsqrt(tf.maximum(x, 0.05)), 0.0, 4.5)


def run(flatbuffer, x):
    interpreter = make_interpreter(flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(int)


def fully_delegated(flatbuffer):
    """Whether XNNPACK takes the whole graph: one part, which writes the graph's outputs."""
    outputs = tuple(d["index"] for d in make_interpreter(flatbuffer, num_threads=1).get_output_details())
    parts = xnnpack_parts(flatbuffer)
    return len(parts) == 1 and parts[0][1] == outputs


# name: (function, input shape, input range, ops to move to float32)
CASES = {
    "SOFTMAX": (softmax, [1, 2, 8, 8], (-8.0, 8.0), ["SOFTMAX"]),
    "GELU": (gelu, [1, 8, 32], (-6.0, 6.0), ["GELU"]),
    # kcompress's LayerNorm: MAXIMUM with a constant floor (an int8 constant operand), then RSQRT.
    "MAXIMUM+RSQRT": (inverse_sqrt, [1, 8, 1], (0.0, 40.0), ["MAXIMUM", "RSQRT"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_op_moves_to_float_with_the_same_int8_tensors_around_it(case):
    fn, shape, input_range, names = CASES[case]
    int8 = single_op(fn, shape, input_range)
    rewritten, counts = run_in_float(int8, names)
    assert counts == dict.fromkeys(names, 1)
    before, after = describe(int8), describe(rewritten)
    assert [op.name for op in after.ops if op.name not in ("DEQUANTIZE", "QUANTIZE")] == [op.name for op in before.ops]
    computing = [op for op in after.ops if op.name not in ("DEQUANTIZE", "QUANTIZE")]
    for op, int8_op in zip(computing, before.ops):
        if op.name in names:
            assert {t.dtype for t in op.inputs + op.outputs} == {"float32"}, op
            assert [t.shape for t in op.inputs] == [t.shape for t in int8_op.inputs]
    # The int8 tensors around the ops keep their scales: the file's inputs and outputs did not change.
    assert [(t.dtype, t.scale, t.zero_point) for t in after.inputs + after.outputs] == [
        (t.dtype, t.scale, t.zero_point) for t in before.inputs + before.outputs
    ]
    # The int8 ops ran on LiteRT's built-in kernels; XNNPACK takes the whole float form in one part.
    assert not fully_delegated(int8)
    assert fully_delegated(rewritten)
    x = np.random.default_rng(0).integers(-128, 128, size=shape).astype(np.int8)
    assert np.abs(run(rewritten, x) - run(int8, x)).max() <= 1


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["SOFTMAX", "GELU"]),
    width=st.floats(0.5, 40.0),
    centre=st.floats(-4.0, 4.0),
    seed=st.integers(0, 2**16),
)
def test_float_form_is_within_one_output_step_of_the_int8_kernel(name, width, centre, seed):
    fn, shape, _, _ = CASES[name]
    int8 = single_op(fn, shape, (centre - width / 2, centre + width / 2))
    rewritten, _ = run_in_float(int8, [name])
    x = np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)
    assert np.abs(run(rewritten, x) - run(int8, x)).max() <= 1


def test_a_graph_without_those_ops_is_returned_as_it_is(mlp_int8):
    rewritten, counts = run_in_float(mlp_int8[1], FLOAT_OPS)
    assert counts == {} and rewritten == mlp_int8[1]


def test_float_op_of_a_float_file_is_left_alone(convert):
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(4)
    flatbuffer = convert(lambda x: tf.nn.softmax(dense(x)), tf.TensorSpec([1, 8], name="x"))
    assert run_in_float(flatbuffer, ["SOFTMAX"]) == (flatbuffer, {})


@pytest.fixture(scope="module")
def qat_gelu_mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="gelu"), keras.layers.Dense(3), keras.layers.Softmax()]
    )
    x = np.random.default_rng(0).standard_normal((64, 16)).astype("float32")
    qat = fit(quantize_model(model), x, np.random.default_rng(1).integers(0, 3, 64), steps=3)
    calibrate(qat, x)
    return qat, x


def test_convert_with_float_ops(qat_gelu_mlp, tmp_path):
    qat, x = qat_gelu_mlp
    full = convert(qat, tmp_path / "full.tflite", mode="int8")
    cpu = convert(qat, tmp_path / "cpu.tflite", mode="int8", float_ops=("SOFTMAX", "GELU"))
    assert full.float_ops == {} and full.model.is_full_integer()
    assert cpu.float_ops == {"GELU": 1, "SOFTMAX": 1}
    assert not cpu.model.is_full_integer()
    assert "int8, float32 GELU x1, SOFTMAX x1" in str(cpu)
    assert cpu.model.op_counts()["DEQUANTIZE"] == cpu.model.op_counts()["QUANTIZE"] == 2
    # Same numbers as the full-int8 file (within one output step), so as close to the QAT model.
    scale, zero_point = full.model.inputs[0].scale, full.model.inputs[0].zero_point
    rows = np.clip(np.round(x[:16] / scale + zero_point), -128, 127).astype(np.int8)
    files = [open(c.path, "rb").read() for c in (cpu, full)]
    for row in rows:
        assert np.abs(run(files[0], row[None]) - run(files[1], row[None])).max() <= 1
    # An Edge TPU would stop at the first DEQUANTIZE: the report says so.
    report = check_edgetpu(cpu.path)
    assert not report.ready
    assert report.first_cpu_op[1] == "DEQUANTIZE"
    assert check_edgetpu(full.path).first_cpu_op == (report.first_cpu_op[0], "GELU")


def test_error_float_ops_outside_int8(tmp_path):
    with pytest.raises(ValueError, match=r"Expected float_ops only with mode='int8'. Received: mode='dynamic'"):
        convert(mlp(), tmp_path / "m.tflite", mode="dynamic", float_ops=("SOFTMAX",))
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize(
    "value, message",
    [
        ("SOFTMAX", r"Expected float_ops as a tuple of op names among .*Received: float_ops='SOFTMAX'"),
        (("SOFTMAX", "CONV_2D"), r"Expected float_ops among \('GELU', 'MAXIMUM', 'RSQRT', 'SOFTMAX'\). Received:"),
    ],
)
def test_error_float_ops_names(value, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        check_float_ops(value)
    with pytest.raises(ValueError, match=message):
        convert(mlp(), tmp_path / "m.tflite", mode="int8", representative_data=np.zeros((4, 16)), float_ops=value)
    assert not (tmp_path / "m.tflite").exists()
