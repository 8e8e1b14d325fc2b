"""A tiny folder of real images (MNIST digits 0-2, one subfolder each) and a small CNN: the image pipeline's inputs."""

import os

import keras

from kcompress.data import load_mnist


def write_digit_folder(root, classes=3, per_class=8, side=16):
    """``root/<digit>/<i>.png``: `per_class` greyscale `side`-pixel digits of each of the first `classes` digits."""
    images, labels, names = load_mnist("train", image_size=(side, side), channels=1, size=400)
    for digit in range(classes):
        folder = os.path.join(root, names[digit])
        os.makedirs(folder, exist_ok=True)
        for i, image in enumerate(images[labels == digit][:per_class]):
            keras.utils.save_img(os.path.join(folder, f"{i}.png"), image, scale=False)
    return str(root)


def small_cnn(classes=3, side=16, channels=3, seed=0):
    """Conv(relu) -> max pool -> conv(relu) -> global average pool -> dense softmax (no BatchNormalization)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((side, side, channels)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
