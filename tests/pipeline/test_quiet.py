"""The pipeline's own calls raise no Keras UserWarning, and its params column counts weights only."""

import contextlib
import types
import warnings

import keras
import numpy as np

import tflite_export
from kcompress import pruning, quantization
from kcompress.pipeline import measure, stages
from tests.helpers import bert_inputs, tiny_bert_classifier


@contextlib.contextmanager
def no_user_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


def _context(n=16):
    x = bert_inputs(n)
    tokens = types.SimpleNamespace(x_train=x, y_train=np.arange(n) % 2)
    return types.SimpleNamespace(
        tokens=tokens,
        config=types.SimpleNamespace(seed=0),
        fit_verbose=0,
        preprocessor=None,
        scope=contextlib.nullcontext,
    )


def test_qat_model_counts_the_weights_of_its_float_source():
    model = tiny_bert_classifier()
    kernel = model.backbone.get_layer("transformer_layer_0")._feedforward_output_dense.kernel
    kernel.assign(np.where(np.arange(kernel.shape[-1]) % 2, kernel.numpy(), 0.0))  # Sparsity masks in QAT.
    qat = quantization.quantize_model(model)
    pruned = pruning.prune_low_magnitude(model)
    assert qat.count_params() > model.count_params() < pruned.count_params()  # Ranges and masks...
    assert measure.weight_count(qat) == measure.weight_count(pruned) == model.count_params()  # ...not counted.


def test_copying_and_quantizing_a_compiled_keras_hub_task_does_not_warn():
    model = stages.compile_classifier(tiny_bert_classifier(), 1e-3)
    with no_user_warning():
        quantization.quantize_model(model)  # A copy from the config, and a probe of the encoder on zeros.


def test_a_keras_hub_task_trains_saves_and_loads_without_warning(tmp_path):
    context = _context()
    model = stages.compile_classifier(tiny_bert_classifier(), 1e-3)
    model.run_eagerly = True  # Two steps: tracing would take longer.
    with no_user_warning():
        stages._fit(context, model, types.SimpleNamespace(batch_size=8, epochs=1))  # Shuffled by us, not keras-hub.
        stages._save_keras(model, tmp_path, context)
        loaded = stages._load_keras(tmp_path, context, None)
    assert int(model.optimizer.iterations) == 2 and model.optimizer.built  # Trained, and keeps its optimizer.
    x = context.tokens.x_train
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_a_model_built_on_a_list_of_one_input_is_measured_calibrated_and_verified_quietly(tmp_path):
    inputs = keras.Input((4, 4, 3))  # As keras.applications builds a model on input_tensor=: a list of one.
    model = keras.Model([inputs], keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    x, y = np.random.default_rng(0).normal(size=(10, 4, 4, 3)).astype("float32"), np.arange(10) % 3
    qat = quantization.quantize_model(model)
    with no_user_warning():
        accuracy = measure.accuracy(model, x, y, batch_size=4)
        quantization.calibrate(qat, x)
        tflite_export.convert(qat, tmp_path / "listed.tflite", mode="int8")
        check = tflite_export.verify(qat, tmp_path / "listed.tflite", x)
    assert 0.0 <= accuracy <= 1.0 and check.examples == 10
