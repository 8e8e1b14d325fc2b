"""Students made from a teacher: fewer layers, weights copied (DistilBERT-style)."""

from kcompress._errors import expected_error

# Backbone attributes copied as they are from the teacher.
_SHARED_BACKBONE_LAYERS = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_layer_norm",
    "pooled_dense",
)


def shallow_student(teacher, num_layers, layers=None):
    """Returns a copy of a keras-hub BERT classifier that keeps `num_layers` blocks.

    The student has the teacher's width, heads, vocabulary and head; its
    embeddings, pooler and classifier are copied from the teacher, and its
    blocks from the teacher blocks listed in `layers` (default: the first
    `num_layers`, which fine-tune best). Distilling from the teacher then
    starts from a good point. The teacher is not changed; the student has no
    preprocessor (it takes token ids).

    Args:
        teacher: A `keras_hub.models.BertTextClassifier` (or another task
            whose backbone has ``transformer_layers`` and takes the same
            constructor arguments as `BertBackbone`).
        num_layers: Int in ``[1, teacher depth]``.
        layers: Optional teacher block indices to copy, one per student block.

    Example:

    >>> import keras_hub
    >>> backbone = keras_hub.models.BertBackbone(
    ...     vocabulary_size=50, num_layers=3, num_heads=2, hidden_dim=8,
    ...     intermediate_dim=16, max_sequence_length=8)
    >>> teacher = keras_hub.models.BertTextClassifier(backbone, 2, preprocessor=None)
    >>> shallow_student(teacher, 1).backbone.num_layers
    1
    """
    backbone = getattr(teacher, "backbone", None)
    blocks = getattr(backbone, "transformer_layers", None)
    if not blocks or not hasattr(teacher, "output_dense"):
        raise expected_error(
            "a keras-hub text classifier with a BERT-family backbone (e.g. BertTextClassifier)",
            teacher=type(teacher).__name__,
        )
    depth = len(blocks)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= depth:
        raise expected_error(f"num_layers in [1, {depth}] (the teacher's depth)", num_layers=num_layers)
    layers = list(range(num_layers)) if layers is None else list(layers)
    if len(layers) != num_layers or not all(isinstance(i, int) and 0 <= i < depth for i in layers):
        raise expected_error(f"{num_layers} teacher block indices in [0, {depth})", layers=layers)
    config = backbone.get_config()
    config["num_layers"] = num_layers
    student_backbone = type(backbone).from_config(config)
    task_config = {
        key: value
        for key, value in teacher.get_config().items()
        if key not in ("backbone", "preprocessor", "name", "trainable", "dtype")
    }
    student = type(teacher)(backbone=student_backbone, preprocessor=None, **task_config)
    pairs = [
        (getattr(backbone, name), getattr(student_backbone, name))
        for name in _SHARED_BACKBONE_LAYERS
        if hasattr(backbone, name)
    ]
    pairs += [(blocks[i], block) for i, block in zip(layers, student_backbone.transformer_layers)]
    pairs.append((teacher.output_dense, student.output_dense))
    for source, target in pairs:
        target.set_weights(source.get_weights())
    return student
