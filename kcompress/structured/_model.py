"""Which models structured pruning supports, and how to take them apart and rebuild them.

One table, `SUPPORTED`, keyed by class (looked up along the MRO, so
`PrunedBertBackbone` counts as a `BertBackbone`): each entry says how to find
the backbone inside the model and how to put a new backbone back in.
"""

import dataclasses

import keras
import keras_hub

from kcompress._errors import expected_error
from kcompress._layer_table import LayerTable


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The sizes of a supported transformer, read from a built model.

    Attributes:
        num_heads: Heads per transformer layer.
        intermediate_dim: Feed-forward units per transformer layer.
        key_dim: Size of every head.
        hidden_dim: Width of the encoder.
    """

    num_heads: tuple
    intermediate_dim: tuple
    key_dim: int
    hidden_dim: int

    @property
    def num_layers(self):
        return len(self.num_heads)


def _backbone_of_classifier(model):
    return model.backbone


def _rebuild_classifier(model, backbone):
    new = keras_hub.models.BertTextClassifier(
        backbone=backbone,
        num_classes=model.num_classes,
        preprocessor=model.preprocessor,
        activation=model.activation,
        dropout=model.dropout,
    )
    new.output_dense.set_weights(model.output_dense.get_weights())
    return new


SUPPORTED = LayerTable(
    {
        keras_hub.models.BertTextClassifier: (_backbone_of_classifier, _rebuild_classifier),
        keras_hub.models.BertBackbone: (lambda model: model, lambda model, backbone: backbone),
    }
)
SUPPORTED_NAMES = "keras_hub.models.BertTextClassifier or keras_hub.models.BertBackbone (including PrunedBertBackbone)"


def _entry(model):
    found = SUPPORTED.lookup(type(model))
    if found is not None:
        return found
    raise expected_error(
        f"a supported transformer: {SUPPORTED_NAMES}", model=f"{type(model).__name__} '{getattr(model, 'name', '')}'"
    )


def backbone(model):
    """The `BertBackbone` of a supported model (raises for other models)."""
    found = _entry(model)[0](model)
    if found is None:
        raise expected_error("a task with a backbone", model=model.name)
    return found


def rebuild(model, new_backbone):
    """A model like `model` around `new_backbone` (head weights copied)."""
    return _entry(model)[1](model, new_backbone)


def encoders(model):
    """The transformer layers of a supported model, in order."""
    return list(backbone(model).transformer_layers)


def attention(encoder):
    """The self-attention layer of a transformer layer."""
    layer = encoder._self_attention_layer
    if getattr(layer, "_use_gate", False) or not isinstance(layer, keras.layers.MultiHeadAttention):
        raise expected_error("plain MultiHeadAttention in each transformer layer", attention=type(layer).__name__)
    return layer


def architecture(model):
    """The `Architecture` of a supported, built model."""
    found = backbone(model)
    if not found.built:
        raise expected_error("a built model (call it on data first)", model=model.name)
    layers = encoders(model)
    attentions = [attention(layer) for layer in layers]
    key_dims = {int(a.key_dim) for a in attentions}
    if len(key_dims) != 1:
        raise expected_error("the same head size in every layer", key_dims=sorted(key_dims))
    return Architecture(
        num_heads=tuple(int(a.num_heads) for a in attentions),
        intermediate_dim=tuple(int(layer.intermediate_dim) for layer in layers),
        key_dim=key_dims.pop(),
        hidden_dim=int(found.hidden_dim),
    )


def is_classifier(model):
    return isinstance(model, keras_hub.models.BertTextClassifier)
