"""Shared test helpers: tiny models of every kind and round-trip checks."""

import os
import tempfile

import keras
import numpy as np


def run_serialization_test(obj):
    """get_config -> from_config gives an equal config; returns the copy."""
    config = keras.saving.serialize_keras_object(obj)
    restored = keras.saving.deserialize_keras_object(config)
    assert keras.saving.serialize_keras_object(restored) == config
    return restored


def save_and_load(model, name="model.keras"):
    """Round-trips a model through a `.keras` file."""
    path = os.path.join(tempfile.mkdtemp(), name)
    model.save(path)
    return keras.models.load_model(path)


def mlp(input_dim=16, hidden=32, outputs=2):
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(outputs),
        ]
    )


def functional_cnn():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3)(x)
    x = keras.layers.SeparableConv2D(8, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def mobile_cnn(seed=0):
    """A MobileNetV3-like CNN on [0, 255] pixels: Rescaling, Conv → BN → ReLU6, a hard-sigmoid written
    with ops (``relu6(x + 3) / 6``) gating a squeeze-excite Multiply, a residual Add → ReLU."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    gate = keras.layers.Conv2D(8, 1)(keras.layers.GlobalAveragePooling2D(keepdims=True)(x))
    gate = keras.layers.ReLU(6.0)(gate + 3.0) * (1.0 / 6.0)
    y = keras.layers.Multiply()([x, gate])
    y = keras.layers.BatchNormalization()(keras.layers.DepthwiseConv2D(3, padding="same")(y))
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


def mobilenet_like(first=None, middle=None, size=16, channels=3, pool=True):
    """A CNN XNNPACK can run sparse: ZeroPadding2D(1) + Conv 3x3 s2 -> [depthwise 3x3 -> 1x1 conv] x 2
    -> GlobalAveragePooling2D -> Dense. `first` / `middle` replace the stem / add layers (for refusals)."""
    layers = keras.layers
    x = inputs = keras.Input((size, size, channels))
    x = first(x) if first else layers.Conv2D(8, 3, strides=2, name="stem")(layers.ZeroPadding2D(1)(x))
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.DepthwiseConv2D(3, padding="same", name="dw_1")(x)
    x = layers.Conv2D(16, 1, name="pw_1")(layers.ReLU(6.0)(layers.BatchNormalization()(x)))
    x = middle(x) if middle else x
    x = layers.DepthwiseConv2D(3, strides=2, name="dw_2")(layers.ZeroPadding2D(1)(layers.ReLU(6.0)(x)))
    x = layers.Conv2D(16, 1, name="pw_2")(x)
    x = layers.Add()([x, layers.Conv2D(16, 1, name="pw_3")(layers.ReLU()(x))])
    x = layers.GlobalAveragePooling2D()(x) if pool else layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(4, name="classifier")(x))


def functional_attention():
    inputs = keras.Input((6, 16))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(inputs, inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


@keras.saving.register_keras_serializable(package="kcompress_tests")
class SubclassedMLP(keras.Model):
    def __init__(self, hidden=32, outputs=2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.outputs_dim = outputs
        self.dense_in = keras.layers.Dense(hidden, activation="relu")
        self.dense_out = keras.layers.Dense(outputs)

    def call(self, x, training=None):
        return self.dense_out(self.dense_in(x, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "outputs": self.outputs_dim}


def subclassed_mlp(input_dim=16):
    model = SubclassedMLP()
    model(np.zeros((1, input_dim), "float32"))
    return model


BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert_backbone(
    layers=2, width=16, heads=2, vocabulary=64, seq_len=8, intermediate=None, dropout=0.1, seed=None
):
    """The one tiny keras-hub `BertBackbone` of the tests (`seed`, if given, is set just before it)."""
    import keras_hub

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=width,
        intermediate_dim=intermediate or 2 * width,
        max_sequence_length=seq_len,
        dropout=dropout,
    )


def bert_preprocessor(words, seq_len=8):
    """A `BertTextClassifierPreprocessor` whose WordPiece vocabulary is the special tokens plus `words`."""
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=[*BERT_SPECIAL_TOKENS, *words])
    return keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=seq_len)


def tiny_bert_classifier(seq_len=8, *, preprocessor=None, num_classes=2, dropout=0.1, backbone=None, **backbone_args):
    """A tiny `BertTextClassifier` (on preprocessed inputs unless given a `preprocessor`).

    `backbone_args` go to `tiny_bert_backbone`; a preprocessor sets the vocabulary size.
    """
    import keras_hub

    if backbone is None:
        if preprocessor is not None:
            backbone_args["vocabulary"] = preprocessor.tokenizer.vocabulary_size()
        backbone = tiny_bert_backbone(seq_len=seq_len, dropout=dropout, **backbone_args)
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=num_classes, preprocessor=preprocessor, dropout=dropout
    )


def bert_inputs(n=32, seq_len=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(0, 64, (n, seq_len)).astype("int32"),
        "segment_ids": np.zeros((n, seq_len), "int32"),
        "padding_mask": np.ones((n, seq_len), "int32"),
    }


def data_for(model, n=32, seed=0):
    """Random (x, y) matching a model's inputs, with 2-class labels."""
    rng = np.random.default_rng(seed)
    if getattr(model, "backbone", None) is not None:
        x = bert_inputs(n, seed=seed)
    else:
        try:
            shape = tuple(model.inputs[0].shape[1:])
        except (AttributeError, TypeError, ValueError):
            shape = (16,)  # Subclassed models here take 16 features.
        x = rng.standard_normal((n, *shape)).astype("float32")
    return x, rng.integers(0, 2, n)


MODEL_KINDS = {
    "sequential": mlp,
    "functional_cnn": functional_cnn,
    "functional_attention": functional_attention,
    "subclassed": subclassed_mlp,
    "keras_hub_bert": tiny_bert_classifier,
}


def is_same_kind(copy, model):
    """A wrapped copy keeps its model's class; a keras-hub or subclassed one is a same-named
    subclass of it that only saves differently (`kcompress._swaps`)."""
    return isinstance(copy, type(model)) and type(copy).__name__ == type(model).__name__


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_jax_processes(module, *args, count=2, timeout=600):
    """Runs ``python -m module ADDRESS PROCESS_ID *args`` in `count` KERAS_BACKEND=jax processes at once.

    The processes meet at a free local port; each must print one JSON line
    last. Returns those lines, parsed, by process id.
    """
    import json
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", module, address, str(i), *map(str, args)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results
