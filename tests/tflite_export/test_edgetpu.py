import keras
import pytest
import tensorflow as tf

from tflite_export.edgetpu import EDGETPU_OPS, check_edgetpu


def test_int8_cnn_is_ready(cnn_int8, tmp_path):
    path = tmp_path / "cnn.tflite"
    path.write_bytes(cnn_int8[1])
    report = check_edgetpu(path)
    assert report.ready
    assert report.problems == ()
    assert report.first_cpu_op is None
    assert report.mapped_ops == report.total_ops == 5
    assert all(op.on_edgetpu and op.supported for op in report.ops)
    assert str(report).startswith("Edge TPU: ready")
    assert "| 4 | SOFTMAX | Edge TPU |  |" in report.table()


def test_float_model_is_not_ready(mlp_float):
    report = check_edgetpu(mlp_float[1])
    assert not report.ready
    assert report.verdict == "not ready: tensors are float32"
    assert report.first_cpu_op == (0, "FULLY_CONNECTED")
    assert report.mapped_ops == 0
    assert "float32 'x'" in report.problems[0]


def test_dynamic_batch_is_not_ready(dynamic_int8):
    report = check_edgetpu(dynamic_int8[1])
    assert not report.ready
    assert report.verdict == "not ready: dynamic shape"
    assert any("'x' has shape_signature (-1, 16)" in p for p in report.problems)
    assert report.first_cpu_op == (0, "FULLY_CONNECTED")


def test_unsupported_op_is_the_first_cpu_op(gelu_int8):
    report = check_edgetpu(gelu_int8[1])
    assert not report.ready
    assert report.first_cpu_op == (1, "GELU")
    assert (report.mapped_ops, report.total_ops) == (1, 3)
    last = report.ops[2]
    assert last.name == "FULLY_CONNECTED" and last.supported and not last.on_edgetpu
    assert report.problems == ("op #1 GELU: GELU is not in the Edge TPU list; RELU maps",)
    assert "op #1 GELU and every later op would run on the CPU" in report.verdict
    assert "first CPU op: #1 GELU" in str(report)


def test_float_op_inside_int8_model(cumsum_int8):
    report = check_edgetpu(cumsum_int8)
    assert report.first_cpu_op == (2, "DEQUANTIZE")
    assert report.mapped_ops == 2
    assert report.verdict.startswith("not ready: tensors are float32")
    assert any(p.startswith("op #3 CUMSUM") for p in report.problems)


def test_batch_size_and_two_dimensional_outputs(convert):
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(3)
    data = convert(lambda x: keras.ops.softmax(dense(x)), tf.TensorSpec([4, 16], tf.float32, name="x"), int8=True)
    report = check_edgetpu(data)
    assert not report.ready
    assert any(p.startswith("batch size: input 'x' has batch 4") for p in report.problems)
    assert report.first_cpu_op == (0, "FULLY_CONNECTED")
    assert "output tensor must be one-dimensional" in report.ops[0].reasons[0]
    assert "supports only a 1-D input" in report.ops[1].reasons[0]


def test_only_three_innermost_dimensions(convert):
    data = convert(lambda x: tf.nn.relu(x), tf.TensorSpec([1, 2, 2, 2, 2], tf.float32, name="x"), int8=True)
    report = check_edgetpu(data)
    assert not report.ready
    assert any("only the 3 innermost dimensions" in r for op in report.ops for r in op.reasons)


def test_table_lists_documented_ops():
    assert EDGETPU_OPS["SOFTMAX"].startswith("Supports only 1-D input tensor")
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "RESHAPE"} <= set(EDGETPU_OPS)
    assert "BATCH_MATMUL" not in EDGETPU_OPS and "GELU" not in EDGETPU_OPS


def test_rejects_missing_file():
    with pytest.raises(ValueError, match="Expected a path to an existing .tflite file"):
        check_edgetpu("/no/such.tflite")
