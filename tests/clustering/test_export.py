"""A clustered, stripped model's `.tflite` compresses with gzip as its few distinct values allow."""

import gzip

import keras
import numpy as np
import pytest

from kcompress import clustering
from tests.helpers import bert_inputs, tiny_bert_classifier
from tflite_export.convert import convert
from tflite_export.verify import verify


def gzipped_size(path):
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9))


def wide_mlp():
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(2),
        ]
    )


@pytest.mark.parametrize("mode", ["float32", "float16"])
def test_clustered_tflite_gzips_much_smaller(mode, tmp_path):
    model = wide_mlp()
    stripped = clustering.strip_clustering(clustering.cluster_weights(model, number_of_clusters=16))
    dense = convert(model, tmp_path / "dense.tflite", mode=mode)
    clustered = convert(stripped, tmp_path / "clustered.tflite", mode=mode)
    assert abs(clustered.size_bytes - dense.size_bytes) < 64  # Same layout, same raw size (names aside)...
    ratio = gzipped_size(clustered.path) / gzipped_size(dense.path)
    assert ratio < 0.45, ratio  # ...but 16 values per kernel: about 4 bits of entropy per weight.
    # The .tflite computes what the stripped model computes.
    check = verify(stripped, clustered.path, np.random.default_rng(0).standard_normal((8, 64)).astype("float32"))
    assert check.max_abs_diff < (1e-2 if mode == "float16" else 1e-4), str(check)


def test_clustered_keras_hub_tflite_gzips_smaller(tmp_path):
    model = tiny_bert_classifier()
    small = clustering.cluster_transformer(model, number_of_clusters=16, include_embeddings=True, include_head=True)
    shapes = {k: (8,) for k in bert_inputs(1)}
    dense = convert(model, tmp_path / "dense.tflite", input_shapes=shapes)
    clustered = convert(small, tmp_path / "clustered.tflite", input_shapes=shapes)
    assert gzipped_size(clustered.path) < 0.8 * gzipped_size(dense.path)
