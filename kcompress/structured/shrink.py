"""`shrink`: build the physically smaller model a `Plan` describes."""

from keras import ops

from kcompress._errors import expected_error
from kcompress.structured import _model, ffn, heads
from kcompress.structured.backbone import PrunedBertBackbone
from kcompress.structured.plan import Plan

_SHARED = ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm", "pooled_dense")


def _check(plan, architecture):
    if not isinstance(plan, Plan):
        raise expected_error("a kcompress.structured.Plan", plan=plan)
    for position, i in enumerate(plan.layers):
        if i >= architecture.num_layers:
            raise expected_error(f"layer indices below {architecture.num_layers}", layers=plan.layers)
        for name, kept, size in (
            ("heads", plan.heads[position], architecture.num_heads[i]),
            ("ffn", plan.ffn[position], architecture.intermediate_dim[i]),
        ):
            if kept[-1] >= size or kept[0] < 0:
                raise expected_error(f"{name} indices of layer {i} in [0, {size})", **{name: kept})


def _copy(source, target):
    target.set_weights([ops.convert_to_numpy(v.value) for v in source.weights])


def shrink(model, plan):
    """Returns a new, smaller model that keeps only what `plan` says.

    The transformer layers of the result physically have the kept heads
    (same head size) and feed-forward units, with the original weights; the
    embeddings, pooler and classifier head are copied whole. Before any
    training its outputs equal those of the original with the removed heads
    and units masked (see `mask_transformer`), and with the dropped layers
    skipped. The input model is not changed.

    Args:
        model: A built `keras_hub.models.BertTextClassifier` or `BertBackbone`.
        plan: A `Plan` (from `make_plan`, `IterativeStructuredPruning.plan`, ...).

    Returns:
        A `BertTextClassifier` (sharing the original's preprocessor) or a
        backbone, built on `PrunedBertBackbone`.

    Example:

    >>> import keras_hub
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=6)
    >>> small = shrink(backbone, Plan(layers=(1,), heads=((0,),), ffn=((0, 5, 9),)))
    >>> small.num_heads, small.intermediate_dim, small.key_dim
    ([1], [3], 4)
    """
    return shrink_with(model, _model.architecture(model), plan)


def shrink_with(model, architecture, plan):
    """`shrink` of a model whose `Architecture` the caller has read."""
    _check(plan, architecture)
    source = _model.backbone(model)
    target = PrunedBertBackbone(
        vocabulary_size=source.vocabulary_size,
        num_heads=list(plan.num_heads),
        hidden_dim=source.hidden_dim,
        intermediate_dim=list(plan.intermediate_dim),
        key_dim=architecture.key_dim,
        dropout=source.dropout,
        max_sequence_length=source.max_sequence_length,
        num_segments=source.num_segments,
        dtype=source.dtype_policy,
        name=source.name,
    )
    for name in _SHARED:
        _copy(getattr(source, name), getattr(target, name))
    for position, i in enumerate(plan.layers):
        old, new = source.transformer_layers[i], target.transformer_layers[position]
        heads.copy_kept(_model.attention(old), new._self_attention_layer, plan.heads[position])
        ffn.copy_kept(old, new, plan.ffn[position])
        _copy(old._self_attention_layer_norm, new._self_attention_layer_norm)
        _copy(old._feedforward_layer_norm, new._feedforward_layer_norm)
    return _model.rebuild(model, target)
