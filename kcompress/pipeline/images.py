"""The pipeline's images: a folder with one subfolder of images per class.

The layout is the one `keras.utils.image_dataset_from_directory` reads
(``photos/cat/1.jpg``, ``photos/dog/2.png``, ...; class names in sorted
order), and so is the decoding: `tf.io.decode_image`, then a bilinear
`tf.image.resize` to the model's input size, giving float32 pixels in
``[0, 255]``. The model gets them as they are: a model that wants another
range (a `keras.applications` model's ``preprocess_input``) does that
inside itself, e.g. with a `keras.layers.Rescaling` first layer, so its
`.tflite` takes plain pixels too.
"""

import dataclasses
import os

import numpy as np

from kcompress._errors import expected_error
from kcompress.pipeline.data import check_examples, split_train_test

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""The files read as images (those `keras.utils.image_dataset_from_directory` reads)."""

_CHANNELS = (1, 3, 4)
_READ_BATCH = 256  # Images decoded and resized per TensorFlow call.


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """Image paths with their integer labels; indexing with an index array gives a subset."""

    paths: tuple
    labels: np.ndarray

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return ImageFiles(tuple(np.asarray(self.paths, dtype=object)[index]), np.asarray(self.labels)[index])


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Train and test images (as files, read at the model's size) and the class names."""

    train: ImageFiles
    test: ImageFiles
    class_names: tuple


def is_image_folder(data):
    """Whether a config's ``data`` names a folder (of images), not a file (of texts).

    Example:

    >>> import tempfile
    >>> is_image_folder(tempfile.mkdtemp()), is_image_folder("rotten_tomatoes")
    (True, False)
    """
    return os.path.isdir(os.fspath(data))


def scan_image_folder(folder):
    """The images of a folder with one subfolder per class, checked.

    Returns:
        ``ImageFiles`` of every image (class by class, files in sorted order)
        and the class names (the subfolders, sorted).

    Raises:
        ValueError: No class subfolders, fewer than 2, or a class with fewer
            than `data.MIN_EXAMPLES_PER_CLASS` images.

    Example:

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("cat", "dog"):
    ...     (folder / name).mkdir()
    ...     for i in range(5):
    ...         _ = (folder / name / f"{i}.png").write_bytes(b"")
    >>> files, names = scan_image_folder(folder)
    >>> len(files), names, files.labels.tolist()[4:6]
    (10, ('cat', 'dog'), [0, 1])
    >>> (folder / "dog" / "4.png").unlink()
    >>> try:
    ...     scan_image_folder(folder)
    ... except ValueError as error:
    ...     print(str(error).split(". Received")[0])
    Expected at least 5 images in each class folder (4 to train on, 1 to test on)
    """
    folder = os.fspath(folder)
    names = tuple(sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()))
    if not names:
        raise expected_error(
            "a folder of images with one subfolder per class (photos/cat/1.jpg, photos/dog/2.png, ...)",
            data=folder,
            subfolders=0,
        )
    if len(names) < 2:
        raise expected_error("subfolders of at least 2 classes", data=folder, classes=list(names))
    paths, labels = [], []
    for label, name in enumerate(names):
        found = sorted(
            entry.path
            for entry in os.scandir(os.path.join(folder, name))
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        paths += found
        labels += [label] * len(found)
    check_examples(labels, names, folder, items="images", each="in each class folder")
    return ImageFiles(tuple(paths), np.asarray(labels, dtype=np.int32)), names


def load_image_data(config):
    """Finds and splits the images of the folder a `PipelineConfig` names (nothing is decoded yet).

    A fifth of the images, up to ``config.test_size``, is the test set (a
    permutation seeded by ``config.seed``, as for a CSV of texts); up to
    ``config.train_size`` of the rest are the training images.

    Raises:
        ValueError: A bad folder (see `scan_image_folder`), or a config
            `model` that is not a ``.keras`` file (the shipped MiniLM reads texts).
    """
    if config.model == "minilm":
        raise expected_error(
            "a .keras image classifier as model for a folder of images (minilm classifies texts)",
            data=config.data,
            model=config.model,
        )
    files, names = scan_image_folder(config.data)
    train, test = split_train_test(files, config)
    return ImageData(train=train, test=test, class_names=names)


def image_input(model, config):
    """``(height, width, channels)`` of a model's image input; raises unless it takes images.

    Example:

    >>> import keras
    >>> from kcompress.pipeline import PipelineConfig
    >>> config = PipelineConfig(model="m.keras", data="photos")
    >>> image_input(keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Dense(2)]), config)
    (32, 32, 3)
    >>> image_input(keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)]), config)
    Traceback (most recent call last):
    ...
    ValueError: Expected a model whose input is an image, shaped (batch, height, width, channels) with 1, 3 or 4 \
channels and a fixed height and width (the pictures in photos). Received: model='m.keras', input_shape=(None, 16)
    """
    inputs = getattr(model, "inputs", None) or []
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else tuple(tuple(tensor.shape) for tensor in inputs)
    is_image = (
        len(inputs) == 1
        and len(shape) == 4
        and shape[3] in _CHANNELS
        and None not in shape[1:]
        and "float" in str(inputs[0].dtype)
    )
    if not is_image:
        raise expected_error(
            "a model whose input is an image, shaped (batch, height, width, channels) with 1, 3 or 4 channels "
            f"and a fixed height and width (the pictures in {config.data})",
            model=config.model,
            input_shape=shape,
        )
    return tuple(int(side) for side in shape[1:])


def ends_in_softmax(model):
    """Whether a classifier outputs probabilities (a softmax last layer), not logits.

    The last layer of a model nested last (a `keras.applications` model
    behind a `Rescaling`) counts.

    Example:

    >>> import keras
    >>> ends_in_softmax(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]))
    True
    """
    import keras

    last = model
    while isinstance(last, keras.Model) and getattr(last, "layers", None):
        last = last.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def read_images(files, size):
    """Decodes and resizes image files into a float32 array ``(n, height, width, channels)`` in ``[0, 255]``.

    Args:
        files: `ImageFiles` (or a sequence of paths).
        size: ``(height, width, channels)``, e.g. from `image_input`.

    Raises:
        ValueError: A file is not an image TensorFlow can decode.
    """
    import tensorflow as tf

    height, width, channels = size
    paths = list(getattr(files, "paths", files))
    batches = []
    for start in range(0, len(paths), _READ_BATCH):
        images = []
        for path in paths[start : start + _READ_BATCH]:
            try:
                image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
                raise expected_error("image files TensorFlow can decode", image=path) from error
            images.append(tf.image.resize(image, (height, width), method="bilinear"))
        batches.append(tf.stack(images).numpy().astype(np.float32))
    return np.concatenate(batches) if batches else np.zeros((0, height, width, channels), np.float32)
