"""`float32_copy`: a model trained under a mixed-precision policy, computing in float32."""

import keras


def _in_float32(config):
    """`config` with every mixed-precision dtype policy made ``float32``."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name")).startswith("mixed"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _in_float32(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_in_float32(value) for value in config]
    return config


def computes_in_float32(model):
    """Whether every layer of `model` computes in float32 (no mixed-precision policy)."""
    return all(layer.compute_dtype == "float32" for layer in model._flatten_layers(include_self=True))


def float32_copy(model):
    """Returns `model` itself if it computes in float32, else a copy that does, with the same weights.

    A model trained under ``mixed_bfloat16`` or ``mixed_float16`` keeps float32
    variables; its float32 copy is what a converter (TFLite, ONNX) reads.

    Example:

    >>> keras.mixed_precision.set_global_policy("mixed_bfloat16")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> keras.mixed_precision.set_global_policy("float32")
    >>> model.layers[0].compute_dtype, float32_copy(model).layers[0].compute_dtype
    ('bfloat16', 'float32')
    """
    if computes_in_float32(model):
        return model
    copy = keras.saving.deserialize_keras_object(_in_float32(keras.saving.serialize_keras_object(model)))
    copy.set_weights(model.get_weights())
    return copy
