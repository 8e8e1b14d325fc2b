"""Helpers shared by the clustering tests."""

import keras
import numpy as np

from kcompress import clustering


def fit(model, x, y, steps=2, batch_size=8, learning_rate=1e-2, run_eagerly=True):
    """Compiles for 2-class logits and fits `steps` batches (eager by default: faster for a few steps)."""
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=run_eagerly,
    )
    model.fit(x, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps, verbose=0)
    return model


def outputs(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def centroids(model):
    return {w.name: [np.array(c.numpy()) for c in w.centroids] for w in clustering.clustering_wrappers(model)}


def named_mlp(input_dim=16, hidden=32, outputs=2):
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(hidden, activation="relu", name="hidden_2"),
            keras.layers.Dense(outputs, name="head"),
        ],
        name="mlp",
    )
