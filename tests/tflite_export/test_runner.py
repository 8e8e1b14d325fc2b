import numpy as np
import pytest
import tensorflow as tf

from tflite_export._runner import Runner, quantize


def test_quantizes_float_inputs_and_dequantizes_outputs(mlp_int8):
    runner = Runner(mlp_int8[1])
    params = runner.input_details["x"]["quantization_parameters"]
    scale, zero_point = params["scales"][0], params["zero_points"][0]
    x = np.random.default_rng(0).normal(size=(1, 16)).astype("float32")
    fed = runner.prepare(x)["x"]
    assert fed.dtype == np.int8
    np.testing.assert_array_equal(fed, np.clip(np.round(x / scale) + zero_point, -128, 127))
    (out,) = runner.run(x).values()
    assert out.raw.dtype == np.int8 and out.scale > 0
    np.testing.assert_allclose(out.value, (out.raw.astype("float32") - out.zero_point) * out.scale)


def test_int8_arrays_pass_through_unchanged(mlp_int8):
    runner = Runner(mlp_int8[1])
    raw = np.arange(-8, 8, dtype=np.int8).reshape(1, 16)
    np.testing.assert_array_equal(runner.prepare(raw)["x"], raw)


def test_quantize_rounds_half_away_from_zero_and_clips():
    assert quantize(np.array([0.5, -0.5, 1.5, 1000.0]), 1.0, 0, "int8").tolist() == [1, -1, 2, 127]
    assert quantize(np.array([-1.0]), 0.5, 10, "uint8").tolist() == [8]


def test_float_output_has_no_scale(mlp_float):
    (out,) = Runner(mlp_float[1]).run(np.zeros((1, 16))).values()
    assert out.scale is None and out.zero_point is None and out.value is out.raw


def test_rejects_wrong_shape(mlp_float):
    with pytest.raises(ValueError, match=r"Expected input 'x' of shape \(1, 16\) float32. Received: shape=\(1, 8\)"):
        Runner(mlp_float[1]).run(np.zeros((1, 8)))


def test_rejects_wrong_rank(mlp_float):
    with pytest.raises(ValueError, match=r"Received: shape=\(16,\)"):
        Runner(mlp_float[1]).run(np.zeros(16))


def test_rejects_strings(mlp_float):
    with pytest.raises(ValueError, match="real numbers"):
        Runner(mlp_float[1]).run(np.full((1, 16), "a"))


def test_dict_inputs_by_signature_name(token_model, tokens):
    model, with_signature, without = token_model
    expected = model({k: v[:1] for k, v in tokens.items()}).numpy()
    for data in (with_signature, without):
        runner = Runner(data)
        assert sorted(runner.input_names) == ["padding_mask", "token_ids"]
        (out,) = runner.run({k: v[:1] for k, v in tokens.items()}).values()
        np.testing.assert_allclose(out.value, expected, atol=1e-5)


def test_rejects_wrong_names(token_model, tokens):
    bad = {"ids": tokens["token_ids"][:1], "padding_mask": tokens["padding_mask"][:1]}
    with pytest.raises(ValueError, match=r"Expected inputs named \['token_ids', 'padding_mask'\]"):
        Runner(token_model[1]).run(bad)


def test_rejects_array_for_two_inputs(token_model, tokens):
    with pytest.raises(ValueError, match="Expected a dict with keys"):
        Runner(token_model[1]).run(tokens["token_ids"][:1])


def test_rejects_floats_for_token_ids(token_model, tokens):
    bad = dict(tokens, token_ids=tokens["token_ids"].astype("float32"))
    with pytest.raises(ValueError, match=r"input 'token_ids' of shape \(1, 6\) int32 \(integer values"):
        Runner(token_model[1]).run({k: v[:1] for k, v in bad.items()})


def test_single_input_accepts_dict(mlp_float):
    runner = Runner(mlp_float[1])
    x = np.ones((1, 16), "float32")
    np.testing.assert_array_equal(runner.run({"x": x})["Identity"].value, runner.run(x)["Identity"].value)


def test_run_batch_loops_over_rows(mlp_int8):
    runner = Runner(mlp_int8[1])
    x = np.random.default_rng(1).normal(size=(5, 16))
    (out,) = runner.run_batch(x).values()
    assert out.value.shape == (5, 3) and out.raw.shape == (5, 3)
    for i in range(5):
        np.testing.assert_array_equal(out.raw[i : i + 1], runner.run(x[i : i + 1])["Identity"].raw)
    assert runner.run_batch(x, max_examples=2)["Identity"].value.shape == (2, 3)


def test_run_batch_dynamic_batch_runs_one_row_at_a_time(dynamic_int8):
    runner = Runner(dynamic_int8[1])
    assert runner.batch_size == 1
    assert runner.run_batch(np.zeros((3, 16)))["Identity"].value.shape == (3, 3)


def test_run_batch_static_batch_of_two(convert):
    data = convert(lambda x: 2.0 * x, tf.TensorSpec([2, 3], tf.float32, name="x"))
    runner = Runner(data)
    assert runner.batch_size == 2
    assert runner.run_batch(np.ones((4, 3)))["Identity"].value.tolist() == [[2.0] * 3] * 4
    with pytest.raises(ValueError, match="divisible by the model's batch size 2. Received: examples=3"):
        runner.run_batch(np.ones((3, 3)))


def test_run_batch_rejects_ragged_dicts(token_model, tokens):
    with pytest.raises(ValueError, match="same number of examples"):
        Runner(token_model[1]).run_batch(dict(tokens, padding_mask=tokens["padding_mask"][:2]))


def test_run_batch_rejects_empty(mlp_float):
    with pytest.raises(ValueError, match="at least one example"):
        Runner(mlp_float[1]).run_batch(np.zeros((0, 16)))


def test_signature_on_a_second_subgraph():
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="x")])
        def double(self, x):
            return {"y": 2.0 * x}

        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="x")])
        def triple(self, x):
            return {"y": 3.0 * x}

    module = Module()
    data = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.double.get_concrete_function(), module.triple.get_concrete_function()], module
    ).convert()
    for key, factor in (("double", 2.0), ("triple", 3.0)):
        out = Runner(data, signature_key=key).run(np.ones((1, 3)))["y"]
        assert out.value.tolist() == [[factor] * 3]
    with pytest.raises(ValueError, match="Expected a signature key in"):
        Runner(data, signature_key="quadruple")


def test_rejects_bad_num_threads(mlp_float):
    with pytest.raises(ValueError, match="Expected num_threads >= 1. Received: num_threads=0"):
        Runner(mlp_float[1], num_threads=0)
