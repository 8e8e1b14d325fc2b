"""QAT under every backend `make test-jax` covers: TF's fake quantization in `keras.ops`, training, `.keras` files,
and a model trained under JAX converted to int8 under TensorFlow."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kcompress.quantization import QuantizeConvBatchNorm, backends, calibrate, quantization_wrappers, quantize_model
from kcompress.quantization.fake_quant import fake_quant_symmetric
from tests.helpers import bert_inputs, mlp, mobile_cnn, save_and_load, tiny_bert_classifier
from tests.quantization.qhelpers import fit, used_ranges

pytestmark = pytest.mark.backends

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FREE, TIES = 24, 40  # Values per example: anywhere, and on or next to the grid's levels and midpoints.


def keras_vjp(fn, *args, upstream):
    """``(fn(*args), gradients of sum(fn * upstream) w.r.t. args)`` by the backend's autodiff (jitted on JAX)."""
    args = [np.asarray(a, "float32") for a in args]
    if BACKEND == "jax":
        import jax

        value, vjp = jax.vjp(jax.jit(fn), *args)
        return np.asarray(value), [np.asarray(g) for g in vjp(np.asarray(upstream, "float32"))]
    if BACKEND != "tensorflow":
        pytest.skip(f"no gradient helper for backend {BACKEND}")
    variables = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(variables)
        value = fn(*variables)
    gradients = tape.gradient(value, variables, output_gradients=tf.constant(upstream, "float32"))
    return value.numpy(), [g.numpy() for g in gradients]


def tf_fake_quant(x, low, high):
    return tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8, narrow_range=False)


@st.composite
def fake_quant_cases(draw):
    """``(x, min, max, upstream)``: values anywhere and at rounding ties, integer upstream gradients (exact sums)."""
    low = draw(st.one_of(st.just(0.0), st.floats(-10.0, 5.0, width=32)))
    high = float(np.float32(low + draw(st.floats(0.001, 15.0))))
    free = draw(hnp.arrays(np.float32, FREE, elements=st.floats(-25.0, 25.0, width=32)))
    scale = np.float32(high - low) / np.float32(255.0)
    zero = np.clip(np.round(-np.float32(low) / scale), 0, 255)
    levels = draw(hnp.arrays(np.float32, TIES, elements=st.sampled_from(np.arange(-20.0, 276.0, 0.5).tolist())))
    ties = ((levels - zero) * scale).astype(np.float32)
    side = draw(hnp.arrays(np.int8, TIES, elements=st.integers(-1, 1)))
    ties = np.where(side == 0, ties, np.nextafter(ties, np.where(side > 0, np.float32(np.inf), -np.inf)))
    upstream = draw(hnp.arrays(np.float32, FREE + TIES, elements=st.integers(-4, 4).map(float)))
    return np.concatenate([free, ties]).astype(np.float32), low, high, upstream


@given(case=fake_quant_cases())
@settings(max_examples=30, deadline=None)
def test_keras_fake_quant_is_tensorflows_in_values_and_gradients(case):
    x, low, high, upstream = case
    expected, expected_grads = keras_vjp_tf(x, low, high, upstream)
    value, grads = keras_vjp(backends.fake_quant_with_min_max_vars, x, low, high, upstream=upstream)
    np.testing.assert_array_equal(value.view(np.int32), expected.view(np.int32))
    for name, got, want in zip(("x", "min", "max"), grads, expected_grads):
        np.testing.assert_array_equal(got, want, err_msg=f"gradient w.r.t. {name}")


def keras_vjp_tf(x, low, high, upstream):
    """TF's op and its registered gradient, in eager TensorFlow whatever the Keras backend."""
    variables = [tf.constant(np.asarray(v, "float32")) for v in (x, low, high)]
    with tf.GradientTape() as tape:
        tape.watch(variables)
        value = tf_fake_quant(*variables)
    gradients = tape.gradient(value, variables, output_gradients=tf.constant(upstream))
    return value.numpy(), [g.numpy() for g in gradients]


def test_range_of_zeros_gives_zeros_and_passes_the_gradient():
    x = np.array([-1.0, 0.0, 2.5], "float32")
    upstream = np.array([1.0, 2.0, 3.0], "float32")
    value, grads = keras_vjp(backends.fake_quant_with_min_max_vars, x, 0.0, 0.0, upstream=upstream)
    expected, expected_grads = keras_vjp_tf(x, 0.0, 0.0, upstream)
    np.testing.assert_array_equal(value, expected)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got, want)


def test_weight_rounding_is_exact_and_straight_through():
    w = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    upstream = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    step = np.abs(w).max(axis=0) / np.float32(127)
    expected = (np.round(w / step) * step).astype("float32")
    for compiled in (False, True):
        value, (grad,) = keras_vjp(lambda v, c=compiled: fake_quant_symmetric(v, 0, compiled=c), w, upstream=upstream)
        np.testing.assert_array_equal(value, expected)
        np.testing.assert_array_equal(grad, upstream)


def pixels(n=32, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 255.0, (n, 8, 8, 3)).astype("float32")


def features(n=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 16)).astype("float32")


def predictions(model, x):
    """Inference outputs through `predict`: one compiled function (eager JAX compiles op by op, ~8 s a model)."""
    rows = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    return model.predict(x, batch_size=rows, verbose=0)


def qat_trained(model, x, steps=3):
    """The QAT model after one step, then `steps - 1` more (compiled as in real training), and its record."""
    y = np.random.default_rng(1).integers(0, model.outputs[0].shape[-1], len(x))
    qat = quantize_model(model)
    fit(qat, x, y, steps=1, run_eagerly=False)
    first = used_ranges(qat)
    history = qat.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=steps - 1, verbose=0).history
    return {"model": qat, "x": x, "first": first, "ranges": used_ranges(qat), "loss": history["loss"]}


@pytest.fixture(scope="module")
def trained():
    """An MLP and a folded CNN (Conv → BatchNorm → ReLU6) after 3 QAT steps under the running backend."""
    keras.utils.set_random_seed(0)
    return {"mlp": qat_trained(mlp(), features()), "cnn": qat_trained(mobile_cnn(), pixels())}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_qat_trains(trained, kind):
    run = trained[kind]
    assert all(np.isfinite(run["loss"])), run["loss"]
    assert run["ranges"] and run["ranges"].keys() == run["first"].keys()
    # Every learnt range contains 0 and is not empty; the moving averages moved after the first step.
    assert all(low <= 0.0 <= high and high > low for low, high in run["ranges"].values()), run["ranges"]
    moved = [key for key in run["ranges"] if run["ranges"][key] != run["first"][key]]
    assert len(moved) >= len(run["ranges"]) // 2, (moved, run["ranges"])


def test_quantized_tensors_stay_marked_in_compiled_steps(trained):
    """The second Dense reads the first's quantized output as it is (under `jax.jit` too, where tensors are tracers):
    it learns no input range of its own, as the int8 graph has none."""
    assert [role for _, _, role in sorted(trained["mlp"]["ranges"])] == ["input", "output", "output"]


def test_cnn_trains_folded(trained):
    folded = [w for w in quantization_wrappers(trained["cnn"]["model"]) if isinstance(w, QuantizeConvBatchNorm)]
    assert len(folded) == 2
    # The BatchNormalization statistics followed the batches.
    assert all(not np.allclose(keras.ops.convert_to_numpy(w.batch_norm.moving_mean), 0.0) for w in folded)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_keras_file_round_trip(trained, kind, tmp_path):
    run = trained[kind]
    loaded = save_and_load(run["model"], f"{kind}.keras")
    np.testing.assert_array_equal(predictions(loaded, run["x"]), predictions(run["model"], run["x"]))


def test_calibrate_sets_the_ranges():
    qat = quantize_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="relu")]))
    assert calibrate(qat, features(8)[:, :4]) == 1
    ranges = used_ranges(qat)
    assert set(role for _, _, role in ranges) == {"input", "output"}
    assert all(low <= 0.0 <= high and high > low for low, high in ranges.values()), ranges


@pytest.mark.large
def test_tiny_bert_calibrates_trains_and_round_trips():
    """keras-hub's BERT classifier: attention, LayerNorm, the encoder wrapper (~90 s under JAX on 2 busy cores)."""
    keras.utils.set_random_seed(0)
    x = bert_inputs(16)
    x["padding_mask"][::2, 6:] = 0
    y = np.random.default_rng(1).integers(0, 2, 16)
    qat = quantize_model(tiny_bert_classifier())
    assert calibrate(qat, x) == 1
    calibrated = used_ranges(qat)
    history = fit(qat, x, y, steps=2, run_eagerly=False).history.history
    assert all(np.isfinite(history["loss"])), history
    ranges = used_ranges(qat)
    assert sum(ranges[key] != calibrated[key] for key in calibrated) >= len(calibrated) // 2
    loaded = save_and_load(qat, "bert.keras")
    np.testing.assert_array_equal(predictions(loaded, x), predictions(qat, x))


_CONVERT = """
import json, sys
import numpy as np
import kcompress  # Registers the quantization wrappers.
import keras
from tflite_export._runner import Runner
from tflite_export.convert import convert

results = {}
for kind, model_path, x_path, tflite_path in json.loads(sys.argv[1]):
    assert keras.backend.backend() == "tensorflow", keras.backend.backend()
    model, x = keras.models.load_model(model_path), np.load(x_path)
    np.save(tflite_path + ".keras.npy", model.predict(x, batch_size=len(x), verbose=0))
    conversion = convert(model, tflite_path, mode="int8")
    runner = Runner(conversion.path)
    output = next(iter(runner.run_batch({runner.input_names[0]: x}).values()))
    np.save(tflite_path + ".npy", output.value)
    results[kind] = {"full_integer": conversion.model.is_full_integer(), "scale": output.scale}
print(json.dumps(results))
"""


@pytest.mark.skipif(BACKEND != "jax", reason="converts a model trained under JAX (runs once, under make test-jax)")
def test_jax_trained_model_converts_to_int8_under_tensorflow(trained, tmp_path):
    jobs, expected = [], {}
    for kind, run in trained.items():
        expected[kind] = predictions(run["model"], run["x"])
        model_path, x_path = str(tmp_path / f"{kind}.keras"), str(tmp_path / f"{kind}.npy")
        run["model"].save(model_path)
        np.save(x_path, run["x"])
        jobs.append((kind, model_path, x_path, str(tmp_path / f"{kind}.tflite")))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, json.dumps(jobs)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, _, _, tflite_path in jobs:
        assert results[kind]["full_integer"], kind
        step = results[kind]["scale"]
        # TensorFlow computes what JAX computed: the same levels, up to a rare float32 tie.
        same = np.abs(np.load(tflite_path + ".keras.npy") - expected[kind]) <= 1e-5
        assert same.mean() >= 0.99, (kind, same.mean())
        steps = np.abs(np.load(tflite_path + ".npy") - expected[kind]) / step
        # The QAT model rounds as the int8 kernels do (seen: every value exact); a float32 tie may go one level off.
        assert np.mean(steps <= 1e-3) >= 0.9, (kind, np.sort(steps.ravel())[-5:])
        assert steps.max() <= 1.0 + 1e-3, (kind, steps.max())
        assert (np.argmax(np.load(tflite_path + ".npy"), -1) == np.argmax(expected[kind], -1)).mean() >= 0.9, kind
