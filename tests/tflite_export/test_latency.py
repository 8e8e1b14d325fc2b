import numpy as np
import pytest

from tflite_export.latency import Latency, benchmark


def test_benchmark_int8_cnn(cnn_int8, tmp_path):
    path = tmp_path / "cnn.tflite"
    path.write_bytes(cnn_int8[1])
    result = benchmark(path, threads=1, runs=5, warmup=1)
    assert isinstance(result, Latency)
    assert result.runs == 5 and result.threads == 1
    assert 0 < result.median_ms <= result.p90_ms and result.mean_ms > 0
    assert "ms" in str(result) and "5 runs" in str(result)


def test_benchmark_with_given_float_inputs(mlp_int8):
    result = benchmark(mlp_int8[1], runs=5, warmup=0, inputs=np.ones((1, 16), "float32"))
    assert result.median_ms > 0 and result.threads == 2


def test_benchmark_token_ids_model(token_model):
    assert benchmark(token_model[1], runs=5).median_ms > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threads": 0}, "Expected threads >= 1. Received: threads=0"),
        ({"runs": 0}, "Expected runs >= 1. Received: runs=0"),
        ({"runs": 2.5}, "Expected runs to be an integer"),
        ({"warmup": -1}, "Expected warmup >= 0. Received: warmup=-1"),
    ],
)
def test_benchmark_rejects_bad_arguments(mlp_float, kwargs, message):
    with pytest.raises(ValueError, match=message):
        benchmark(mlp_float[1], **kwargs)


def test_benchmark_rejects_bad_inputs(mlp_float):
    with pytest.raises(ValueError, match=r"Expected input 'x' of shape \(1, 16\) float32"):
        benchmark(mlp_float[1], runs=1, inputs=np.ones((2, 16)))


def test_compare_times_every_file_in_interleaved_rounds(tmp_path):
    import tensorflow as tf

    from tflite_export import compare

    def tflite(width):
        f = tf.function(lambda x: tf.nn.relu(x), input_signature=[tf.TensorSpec([1, width], tf.float32)])
        return tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()

    result = compare({"small": tflite(8), "large": tflite(4096)}, runs=7, rounds=3, warmup=1)
    assert sorted(result) == ["large", "small"]
    assert all(latency.runs == 7 and latency.median_ms > 0 for latency in result.values())
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite(8))
    assert list(compare([str(path)], runs=2, rounds=2)) == [str(path)]
    with pytest.raises(ValueError, match="Expected runs >= 3. Received: runs=2"):
        compare([str(path)], runs=2, rounds=3)
