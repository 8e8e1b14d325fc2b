"""The benchmark task shared by kcompress and the tfmot baseline (numpy only).

MLP 128 -> 512 -> 512 -> 2 on random samples with labels from a random linear
rule. Both frameworks import the data from here so they train on the same
numbers.
"""

import numpy as np

INPUT_DIM = 128
HIDDEN = 512
CLASSES = 2


def make_data(samples, seed):
    """Returns ``(x, y)``: standard-normal inputs, labels from a random linear rule."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, INPUT_DIM)).astype(np.float32)
    w = rng.standard_normal((INPUT_DIM, CLASSES)).astype(np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int64)
    return x, y
