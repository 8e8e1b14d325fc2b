"""Tiny `.tflite` models for the tflite_export tests, converted once per session."""

import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf


def to_tflite(fn, specs, int8=False, calibration_seed=0):
    """Converts `fn` traced at `specs` (a TensorSpec, or a dict of them) to .tflite bytes.

    Converting the concrete function without a trackable object freezes the
    variables into constants, which is what lets int8 calibration run on
    Keras 3 models. The .tflite has no signatures: inputs are named by their
    TensorSpec names.
    """
    function = tf.function(fn, input_signature=[specs])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    if int8:
        rng = np.random.default_rng(calibration_seed)
        flat = tf.nest.flatten(specs)

        def representative():
            for _ in range(16):
                yield [_sample(rng, spec) for spec in flat]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def exported_tflite(model, specs):
    """Float .tflite through `model.export` (SavedModel): it has a ``serving_default`` signature."""
    with tempfile.TemporaryDirectory() as directory:
        model.export(directory, verbose=False, input_signature=[specs])
        return tf.lite.TFLiteConverter.from_saved_model(directory).convert()


def _sample(rng, spec):
    shape = [1 if d is None else d for d in spec.shape]
    if spec.dtype.is_integer:
        return rng.integers(0, 10, size=shape).astype(spec.dtype.as_numpy_dtype)
    return rng.normal(size=shape).astype(np.float32)


def spec(*shape, dtype=tf.float32, name="x"):
    return tf.TensorSpec(list(shape), dtype, name=name)


def call(model):
    return lambda x: model(x, training=False)


def mlp(outputs=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(outputs)]
    )


@pytest.fixture(scope="session")
def cnn_int8():
    """(keras model, bytes): Conv2D+ReLU, max pooling, Dense, softmax; int8 in and out."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
            keras.layers.Softmax(),
        ]
    )
    return model, to_tflite(call(model), spec(1, 8, 8, 1), int8=True)


@pytest.fixture(scope="session")
def mlp_float():
    model = mlp()
    return model, to_tflite(call(model), spec(1, 16))


@pytest.fixture(scope="session")
def mlp_int8():
    model = mlp()
    return model, to_tflite(call(model), spec(1, 16), int8=True)


@pytest.fixture(scope="session")
def dynamic_int8():
    model = mlp()
    return model, to_tflite(call(model), spec(None, 16), int8=True)


@pytest.fixture(scope="session")
def gelu_int8():
    """Dense -> GELU -> Dense: GELU is not an Edge TPU op."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="gelu"), keras.layers.Dense(3)])
    return model, to_tflite(call(model), spec(1, 16), int8=True)


@pytest.fixture(scope="session")
def cumsum_int8():
    """CUMSUM has no int8 kernel: the converter wraps it in DEQUANTIZE / QUANTIZE."""
    dense = mlp()
    return to_tflite(lambda x: tf.math.cumsum(dense(x), axis=-1), spec(1, 16), int8=True)


@pytest.fixture(scope="session")
def token_model():
    """(keras model, bytes with signatures, bytes without): dict inputs token_ids and padding_mask."""
    keras.utils.set_random_seed(3)
    ids = keras.Input((6,), dtype="int32", name="token_ids")
    mask = keras.Input((6,), dtype="int32", name="padding_mask")
    h = keras.layers.Embedding(10, 4)(ids)
    h = h * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model({"token_ids": ids, "padding_mask": mask}, keras.layers.Dense(2)(h))
    specs = {name: spec(1, 6, dtype=tf.int32, name=name) for name in ("token_ids", "padding_mask")}
    return model, exported_tflite(model, specs), to_tflite(call(model), specs)


@pytest.fixture
def tokens():
    rng = np.random.default_rng(0)
    return {
        "token_ids": rng.integers(0, 10, size=(5, 6)).astype("int32"),
        "padding_mask": np.ones((5, 6), "int32"),
    }


@pytest.fixture(scope="session")
def convert():
    """`to_tflite`, for tests that build their own model."""
    return to_tflite
