import dataclasses

import keras
import pytest

from kcompress.quantization import QuantizationConfig
from kcompress.quantization import config as config_lib


def test_defaults_are_tflite_int8():
    config = QuantizationConfig()
    assert dataclasses.asdict(config) == {
        "weight_bits": 8,
        "activation_bits": 8,
        "per_channel": True,
        "symmetric_weights": True,
        "symmetric_activations": False,
        "ema_decay": 0.99,
        "preserve_sparsity": True,
        "preserve_clusters": False,
        "outlier_ratio": 4.0,
    }
    assert config_lib.get(None) == config


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"weight_bits": 4},
        {"weight_bits": 2, "activation_bits": 16, "per_channel": False, "ema_decay": 0.0},
        {"preserve_sparsity": False, "ema_decay": 0.5},
        {"symmetric_activations": True},
    ],
)
def test_keras_serialization_round_trip(kwargs):
    config = QuantizationConfig(**kwargs)
    serialized = keras.saving.serialize_keras_object(config)
    assert serialized["registered_name"] == "kcompress>QuantizationConfig"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, QuantizationConfig)
    assert restored == config
    assert QuantizationConfig.from_config(config.get_config()) == config
    # `get` accepts the config, its serialized form and a plain dict.
    assert config_lib.get(serialized) == config_lib.get(config.get_config()) == config_lib.get(config) == config


def test_numpy_integers_are_accepted_and_stored_as_int():
    import numpy as np

    config = QuantizationConfig(weight_bits=np.int64(4))
    assert config.weight_bits == 4 and type(config.weight_bits) is int


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        QuantizationConfig().weight_bits = 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight_bits": 1}, r"Expected weight_bits >= 2\. Received: weight_bits=1"),
        ({"weight_bits": 9}, r"Expected weight_bits in \[2, 8\]\. Received: weight_bits=9"),
        ({"weight_bits": 8.0}, r"Expected weight_bits to be an integer\. Received: weight_bits=8\.0"),
        ({"activation_bits": 4}, r"Expected activation_bits >= 8\. Received: activation_bits=4"),
        ({"activation_bits": 12}, r"Expected activation_bits of 8 or 16\. Received: activation_bits=12"),
        ({"ema_decay": 1.0}, r"Expected ema_decay in \[0, 1\)\. Received: ema_decay=1\.0"),
        ({"ema_decay": -0.1}, r"Expected ema_decay in \[0, 1\)\. Received: ema_decay=-0\.1"),
        ({"ema_decay": True}, r"Expected ema_decay in \[0, 1\)\. Received: ema_decay=True"),
        ({"per_channel": "yes"}, r"Expected per_channel to be a bool\. Received: per_channel='yes'"),
        ({"symmetric_weights": 1}, r"Expected symmetric_weights to be a bool\. Received: symmetric_weights=1"),
        (
            {"symmetric_weights": False},
            r"Expected symmetric_weights=True: TFLite's int8 kernels need symmetric weights \(zero point 0\)\. "
            r"Received: symmetric_weights=False$",
        ),
        ({"preserve_sparsity": None}, r"Expected preserve_sparsity to be a bool"),
        ({"symmetric_activations": "on"}, r"Expected symmetric_activations to be a bool\. Received: .*='on'"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QuantizationConfig(**kwargs)


def test_saved_configs_with_symmetric_weights_load():
    saved = {**QuantizationConfig().get_config(), "symmetric_weights": True}
    assert config_lib.get(saved) == QuantizationConfig()
    with pytest.raises(ValueError, match=r"Expected symmetric_weights=True"):
        config_lib.get({**saved, "symmetric_weights": False})


def test_get_rejects_other_types():
    with pytest.raises(ValueError, match=r"Expected a QuantizationConfig, a dict or None\. Received: config=3"):
        config_lib.get(3)
