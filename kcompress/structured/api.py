"""`prune_transformer`: remove heads, feed-forward units and layers of a BERT-family model."""

from kcompress._errors import expected_error
from kcompress.structured import _model
from kcompress.structured.importance import METHODS, Importance, score_with
from kcompress.structured.plan import check_targets, make_plan
from kcompress.structured.shrink import shrink_with


def _needs_scores(architecture, counts_heads, counts_ffn, kept):
    return any(
        counts_heads[i] < architecture.num_heads[i] or counts_ffn[i] < architecture.intermediate_dim[i] for i in kept
    )


def prune_transformer(
    model,
    heads=0.0,
    ffn=0.0,
    layers=None,
    importance_data=None,
    importance="taylor",
    batches=4,
    batch_size=32,
    loss=None,
    verbose=1,
):
    """Returns a smaller copy of a BERT-family model: fewer heads, FFN units and layers.

    The least important heads and feed-forward units of each layer are
    removed physically (the result's layers have fewer heads of the same
    size and fewer intermediate units; sizes may differ per layer) and the
    weights of what is kept are copied. Before fine-tuning, its outputs are
    those of the original with the removed units masked (`mask_transformer`)
    and the dropped layers skipped. It trains with `fit`, saves as `.keras`,
    exports with `tflite_export.convert` and takes
    `kcompress.quantization.quantize_model`. The input model is unchanged.

    Args:
        model: A built `keras_hub.models.BertTextClassifier` or `BertBackbone`
            (a `PrunedBertBackbone`, to prune further, too).
        heads: Fraction in [0, 1) of each layer's heads to remove (rounded
            half up), or a list with the number of heads to KEEP in each
            layer (one entry per layer of `model`; at least 1).
        ffn: The same for feed-forward (intermediate) units.
        layers: None (keep all layers), an int k (keep the first k: top
            layers matter least after fine-tuning, Sajjad et al. 2020), or a
            list of the layer indices to keep.
        importance_data: Preprocessed data for ``importance="taylor"``: a
            batched `tf.data.Dataset` of ``(x, y)`` or ``(x, y)`` arrays.
        importance: ``"taylor"``, ``"magnitude"``, or precomputed `Importance`.
        batches: Batches of `importance_data` to score on.
        batch_size: Rows per batch when `importance_data` is arrays.
        loss: Loss for Taylor scores (see `importance_scores`).
        verbose: 1 shows a progress bar while scoring.

    Returns:
        The smaller model (same kind as `model`).

    Example:

    >>> import keras_hub, numpy as np
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=4,
    ...     hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    >>> model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    >>> x = {"token_ids": np.ones((16, 8), "int32"), "segment_ids": np.zeros((16, 8), "int32"),
    ...      "padding_mask": np.ones((16, 8), "int32")}
    >>> small = prune_transformer(model, heads=0.5, ffn=[16, 8], importance_data=(x, np.zeros(16)),
    ...                           batches=2, batch_size=8, verbose=0)
    >>> small.backbone.num_heads, small.backbone.intermediate_dim, small.backbone.key_dim
    ([2, 2], [16, 8], 4)
    """
    architecture = _model.architecture(model)
    kept, head_counts, ffn_counts = check_targets(architecture, heads, ffn, layers)
    scores = None
    if isinstance(importance, Importance):
        scores = check_scores(architecture, importance)
    elif importance not in METHODS:
        raise expected_error(f"importance in {tuple(METHODS)} or an Importance", importance=importance)
    elif _needs_scores(architecture, head_counts, ffn_counts, kept):
        if importance == "taylor" and importance_data is None:
            raise expected_error(
                "importance_data (preprocessed (x, y) batches) for importance='taylor', or importance='magnitude'",
                importance_data=None,
            )
        scores = score_with(model, architecture, importance_data, importance, batches, batch_size, loss, verbose)
    return prune_with(model, architecture, scores, heads=heads, ffn=ffn, layers=layers)


def check_scores(architecture, importance):
    """Returns `importance` if it scores a model of this `Architecture`; raises otherwise."""
    if (
        tuple(len(s) for s in importance.heads) != architecture.num_heads
        or tuple(len(s) for s in importance.ffn) != architecture.intermediate_dim
    ):
        raise expected_error("importance scores computed on this model", importance=str(importance).splitlines()[0])
    return importance


def prune_with(model, architecture, scores, heads=0.0, ffn=0.0, layers=None):
    """The smaller model for the targets, keeping what `scores` (an `Importance`, or None) ranks highest.

    `architecture` is `model`'s, read by the caller; the targets are as in `prune_transformer`.
    """
    return shrink_with(model, architecture, make_plan(architecture, scores, heads=heads, ffn=ffn, layers=layers))
