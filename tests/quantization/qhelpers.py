"""Helpers shared by the quantization tests."""

import keras
import numpy as np

from kcompress import _surgery, quantization
from kcompress.quantization import kernel as kernel_lib


def compile_model(model, learning_rate=1e-3, run_eagerly=True):
    """Compiles for 2-class logits. Eager by default: tracing a train step costs more than
    the few steps these tests take (about 0.5 s for an MLP, 8 s for the tiny BERT);
    tests that are about graph-mode training pass ``run_eagerly=False``."""
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=run_eagerly,
    )
    return model


def fit(model, x, y, steps=2, batch_size=8, **compile_kwargs):
    """Compiles and fits `model` for `steps` batches (eagerly unless ``run_eagerly=False``)."""
    compile_model(model, **compile_kwargs)
    model.fit(x, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps, verbose=0)
    return model


def outputs(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def named_mlp(input_dim=16, hidden=32, outputs=2):
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(outputs, name="head"),
        ]
    )


def small_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def separable_cnn():
    """A CNN with SeparableConv2D layers: with a multiplier and fused ReLU, strided without bias."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.SeparableConv2D(8, 3, depth_multiplier=2, activation="relu")(x)
    x = keras.layers.SeparableConv2D(4, 1, strides=2, use_bias=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def used_ranges(model):
    """``{(wrapper index, wrapper name, role): (min, max)}`` of every learnt range a call has set.

    Quantizers that never ran (an input already quantized upstream) keep
    ``initialized == 0`` and are left out.
    """
    ranges = {}
    for i, wrapper in enumerate(quantization.quantization_wrappers(model)):
        for role, quantizer in wrapper.quantizers.items():
            if quantizer.fixed_range is None and quantizer.built and float(quantizer.initialized.numpy()) > 0.5:
                low, high = float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy())
                ranges[(i, wrapper.name, role)] = (low, high)
    return ranges


def kernel_layers(model):
    """Layers with a kernel quantized per output channel (Dense, EinsumDense, Conv)."""
    return _surgery.find_layers(model, lambda layer: kernel_lib.input_axes(layer) is not None and layer.built)


def kernel_channels(layer):
    """The layer's kernel as a 2-D array: rows share a scale, one column per output channel."""
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
    axes = list(kernel_lib.input_axes(layer))
    kept = [a for a in range(kernel.ndim) if a not in axes]
    rows = int(np.prod([kernel.shape[a] for a in axes]))
    return np.transpose(kernel, axes + kept).reshape(rows, -1)


def assert_on_int_grid(layer, bits=8):
    """Every output channel of `layer.kernel` is on a symmetric `bits` grid."""
    qmax = 2 ** (bits - 1) - 1
    channels = kernel_channels(layer)
    for c in range(channels.shape[1]):
        column = channels[:, c].astype(np.float64)
        assert len(np.unique(column)) <= 2**bits - 1, (layer.name, c, len(np.unique(column)))
        largest = np.abs(column).max()
        if largest == 0:
            continue
        ratio = column * qmax / largest
        np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-3, err_msg=f"{layer.name} channel {c}")
