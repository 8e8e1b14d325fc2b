"""The masked original: the same model with the removed heads and units silenced."""

import contextlib

from keras import ops

from kcompress import _surgery
from kcompress._errors import expected_error
from kcompress.structured import _model, ffn, heads


def mask_values(model, architecture, plan):
    """``[(variable, value)]`` pairs that silence what `plan` removes from `model`.

    A head is silenced by zeroing its slice of the attention output kernel,
    a feed-forward unit by zeroing its row of the output kernel: exactly what
    removing them computes. Layers cannot be dropped this way, so `plan`
    must keep every layer.
    """
    return [
        (variable, ops.convert_to_numpy(variable.value) * mask) for variable, mask in masks(model, architecture, plan)
    ]


def masks(model, architecture, plan):
    """``[(variable, 0/1 array)]`` whose products silence what `plan` removes (see `mask_values`)."""
    if plan.layers != tuple(range(architecture.num_layers)):
        raise expected_error(
            f"a plan that keeps all {architecture.num_layers} layers to mask (layer dropping is only done by shrink)",
            layers=plan.layers,
        )
    pairs = []
    for encoder, kept_heads, kept_units in zip(_model.encoders(model), plan.heads, plan.ffn):
        pairs += heads.masks(_model.attention(encoder), kept_heads)
        pairs += ffn.masks(encoder, kept_units)
    return pairs


@contextlib.contextmanager
def masked(model, plan):
    """Silences, in place, what `plan` removes while the context is open; restores it after.

    Example:

    >>> import keras_hub
    >>> from kcompress.structured.plan import Plan
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=4, max_sequence_length=6)
    >>> kernel = backbone.transformer_layers[0]._self_attention_layer._output_dense.kernel
    >>> with masked(backbone, Plan(layers=(0,), heads=((1,),), ffn=((0, 1, 2, 3),))):
    ...     float(ops.sum(ops.abs(kernel[0])))
    0.0
    >>> float(ops.sum(ops.abs(kernel[0]))) > 0
    True
    """
    with assigned(mask_values(model, _model.architecture(model), plan)):
        yield model


@contextlib.contextmanager
def assigned(pairs):
    """Assigns ``(variable, value)`` pairs while the context is open; restores the old values after."""
    saved = [(variable, ops.convert_to_numpy(variable.value)) for variable, _ in pairs]
    try:
        for variable, value in pairs:
            variable.assign(value)
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)


def mask_transformer(model, plan):
    """Returns a copy of `model` with the heads and units `plan` removes silenced.

    The copy has the original's architecture; `shrink(model, plan)` computes
    the same outputs with fewer weights. Useful to check a shrink, or to
    measure what pruning costs before committing to it.

    Args:
        model: A built `BertTextClassifier` or `BertBackbone`.
        plan: A `Plan` that keeps every layer.

    Returns:
        The masked copy.
    """
    copy = _surgery.copy_layer(model)
    for variable, value in mask_values(copy, _model.architecture(copy), plan):
        variable.assign(value)
    return copy
