"""The image side of the pipeline: finding, splitting and reading a folder of images (fast; no model is trained)."""

import keras
import numpy as np
import pytest

from kcompress.pipeline import ImageData, PipelineConfig, load_data
from kcompress.pipeline.images import ends_in_softmax, read_images
from tests.pipeline.image_folders import write_digit_folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_folder(tmp_path_factory.mktemp("digits"), per_class=10)


def test_a_folder_is_split_by_seed_like_a_csv(digits):
    config = PipelineConfig(model="m.keras", data=digits, train_size=20, test_size=8)
    data = load_data(config)
    assert isinstance(data, ImageData) and data.class_names == ("0", "1", "2")
    assert len(data.train) == 20 and len(data.test) == 6  # A fifth of 30 images, under test_size.
    assert not set(data.train.paths) & set(data.test.paths)
    assert load_data(config).test.paths == data.test.paths
    assert load_data(PipelineConfig(model="m.keras", data=digits, seed=1)).test.paths != data.test.paths
    with pytest.raises(ValueError, match=r"Expected num_classes=3"):
        load_data(PipelineConfig(model="m.keras", data=digits, num_classes=2))


def test_images_are_read_at_the_model_size_as_float_pixels(digits):
    data = load_data(PipelineConfig(model="m.keras", data=digits))
    rgb = read_images(data.test, (24, 20, 3))
    assert rgb.shape == (len(data.test), 24, 20, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and 200.0 < rgb.max() <= 255.0
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])  # Grey PNGs become grey RGB.
    assert read_images(data.test, (16, 16, 1)).shape == (len(data.test), 16, 16, 1)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    bad = tmp_path / "0.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"Expected image files TensorFlow can decode\. Received: image='.*0\.png'"):
        read_images([str(bad)], (8, 8, 3))


def test_logits_and_probabilities_are_told_apart():
    logits = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    softmax_layer = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Softmax()])
    assert not ends_in_softmax(logits) and ends_in_softmax(softmax_layer)
    inputs = keras.Input((4,))
    nested = keras.Model(inputs, softmax_layer(keras.layers.Rescaling(2.0)(inputs)))
    assert ends_in_softmax(nested)
