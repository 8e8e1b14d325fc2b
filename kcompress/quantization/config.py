"""`QuantizationConfig`: how one layer (or the whole model) is quantized."""

import dataclasses

import keras

from kcompress._errors import check_int, expected_error


@keras.saving.register_keras_serializable(package="kcompress")
@dataclasses.dataclass(frozen=True)
class QuantizationConfig:
    """Settings for quantization-aware training, matching TFLite's int8 scheme.

    The defaults are what the TFLite int8 kernels run: weights symmetric
    int8 with one scale per output channel (zero point 0, range -127..127),
    activations asymmetric int8 with one range per tensor.

    Attributes:
        weight_bits: Bits of the weight grid, 2..8. Below 8 the weights are
            trained on a coarser grid (they are still stored as int8).
        activation_bits: Bits of the activation grid: 8, or 16 for int16
            activations (`int16x8` export).
        per_channel: One weight scale per output channel (True) or one per
            tensor (False).
        symmetric_weights: Must be True: TFLite's int8 kernels need a
            symmetric weight grid (zero point 0), the only one supported.
            Kept so that saved configs load.
        symmetric_activations: Centre every learnt activation range on zero
            (zero point 0), as TensorRT's explicit int8 (ONNX
            QuantizeLinear/DequantizeLinear) needs. A range that starts at
            zero (after a ReLU) then uses half the grid. Off by default: the
            TFLite kernels run asymmetric ranges, and ranges fixed by them
            (softmax, L2 normalization) stay as they are either way.
        ema_decay: Decay of the moving-average activation ranges, in [0, 1).
        preserve_sparsity: Keep weights that are exactly zero at zero while
            training (for models pruned by `kcompress.pruning`).
        preserve_clusters: Keep the distinct values of a clustered kernel
            (at most 256, e.g. from `kcompress.clustering.strip_clustering`)
            tied while training: each weight runs as the mean of the weights
            that shared its value, so the kernel keeps its clusters.
        outlier_ratio: In a BERT's feed-forward residual stream (keras-hub
            `TransformerEncoder`), channels whose largest magnitude during
            `calibrate` exceeds this many times the median channel's are
            carried divided by a constant, so that the others keep a fine
            int8 grid (`QuantizeTransformerEncoder`). 0 keeps one grid for
            all channels.

    Example:

    >>> config = QuantizationConfig(weight_bits=4)
    >>> QuantizationConfig.from_config(config.get_config()) == config
    True
    """

    weight_bits: int = 8
    activation_bits: int = 8
    per_channel: bool = True
    symmetric_weights: bool = True
    symmetric_activations: bool = False
    ema_decay: float = 0.99
    preserve_sparsity: bool = True
    preserve_clusters: bool = False
    outlier_ratio: float = 4.0

    def __post_init__(self):
        object.__setattr__(self, "weight_bits", check_int("weight_bits", self.weight_bits, minimum=2))
        if self.weight_bits > 8:
            raise expected_error("weight_bits in [2, 8]", weight_bits=self.weight_bits)
        bits = check_int("activation_bits", self.activation_bits, minimum=8)
        if bits not in (8, 16):
            raise expected_error("activation_bits of 8 or 16", activation_bits=self.activation_bits)
        object.__setattr__(self, "activation_bits", bits)
        decay = self.ema_decay
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise expected_error("ema_decay in [0, 1)", ema_decay=decay)
        ratio = self.outlier_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (ratio == 0 or ratio > 1):
            raise expected_error("outlier_ratio of 0 (off) or > 1", outlier_ratio=ratio)
        object.__setattr__(self, "outlier_ratio", float(ratio))
        flags = ("per_channel", "symmetric_weights", "symmetric_activations", "preserve_sparsity", "preserve_clusters")
        for name in flags:
            if not isinstance(getattr(self, name), bool):
                raise expected_error(f"{name} to be a bool", **{name: getattr(self, name)})
        if not self.symmetric_weights:
            raise expected_error(
                "symmetric_weights=True: TFLite's int8 kernels need symmetric weights (zero point 0)",
                symmetric_weights=self.symmetric_weights,
            )

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def get(config):
    """Returns a `QuantizationConfig` from None, a config or a dict."""
    if config is None:
        return QuantizationConfig()
    if isinstance(config, QuantizationConfig):
        return config
    if isinstance(config, dict):
        if "class_name" in config:
            return keras.saving.deserialize_keras_object(config)
        return QuantizationConfig(**config)
    raise expected_error("a QuantizationConfig, a dict or None", config=config)
