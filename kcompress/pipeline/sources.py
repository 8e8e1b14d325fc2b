"""What a config's ``data`` names: a folder of images, or texts (the shipped snippets or a CSV file)."""

import os

from kcompress._errors import expected_error
from kcompress.pipeline.data import check_num_classes, load_text_data
from kcompress.pipeline.images import is_image_folder, load_image_data


def load_data(config):
    """Loads and checks the data a `PipelineConfig` names: `ImageData` for a folder, else `TextData`.

    Cheap (no model is built, no image decoded): run it first to find bad
    data before any long work.

    Raises:
        ValueError: The data cannot be read or split, or ``config.num_classes``
            is not the number of its classes.
    """
    if config.data != "rotten_tomatoes" and not os.path.exists(config.data):
        raise expected_error(
            "an existing CSV file of texts, or folder of images with one subfolder per class", data=config.data
        )
    if not is_image_folder(config.data):
        return load_text_data(config)
    data = load_image_data(config)
    check_num_classes(config.num_classes, data.class_names, config.data)
    return data
