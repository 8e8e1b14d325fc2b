"""Distillation losses: small serializable objects the `Distiller` combines.

Each loss reads the tensors it needs from a `LossInputs` and returns one
value per example (shape ``(batch,)``); the `Distiller` takes the
(sample-weighted) mean and multiplies it by the loss's ``weight``. Losses on
hidden states and attention maps carry a `LayerMap` saying which teacher
layer each student layer learns from.
"""

import dataclasses

import keras
from keras import ops

from kcompress._errors import expected_error
from kcompress.distillation.layer_map import LayerMap

_EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class LossInputs:
    """What a loss may read.

    Attributes:
        teacher: Dict of teacher tensors: ``"logits"``, ``"embedding"``,
            ``"hidden/<i>"``, ``"attention/<i>"``.
        student: Dict of student tensors, same keys.
        labels: The batch's ``y`` (may be None).
        pairs: ``(teacher_layer, student_layer)`` pairs of this loss.
        project: ``project(key, tensor)`` maps a student tensor to the
            teacher's width (identity when the widths match).
    """

    teacher: dict
    student: dict
    labels: object = None
    pairs: tuple = ()
    project: object = None


class DistillationLoss:
    """Base class: a weighted term of the distillation objective.

    Subclasses set ``needs`` (the feature kind they read: ``"logits"``,
    ``"hidden"``, ``"attention"`` or ``"embedding"``), implement `call`, and
    extend `get_config`.

    Args:
        weight: Non-negative float multiplying the loss.
        name: Name of the loss in the training logs.
    """

    needs = "logits"
    uses_labels = False
    default_name = "distillation_loss"

    def __init__(self, weight=1.0, name=None):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise expected_error("weight to be a non-negative number", weight=weight)
        self.weight = float(weight)
        self.name = name or self.default_name

    @property
    def layers(self):
        """The `LayerMap` of a layer-wise loss, else None."""
        return None

    def __call__(self, inputs):
        """Returns the per-example loss, shape ``(batch,)``."""
        return self.call(inputs)

    def call(self, inputs):
        raise NotImplementedError

    def get_config(self):
        return {"weight": self.weight, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


@keras.saving.register_keras_serializable(package="kcompress")
class SoftLabelKL(DistillationLoss):
    """KL divergence between softened teacher and student predictions.

    ``T**2 * KL(softmax(teacher / T) || softmax(student / T))`` (Hinton et
    al.), where both models output logits. The ``T**2`` keeps gradient sizes
    comparable across temperatures.

    Args:
        temperature: Positive float; higher softens the targets.
        weight: Weight of the term.
        name: Log name.

    Example:

    >>> import numpy as np
    >>> loss = SoftLabelKL(temperature=2.0)
    >>> same = {"logits": np.array([[1.0, 2.0]])}
    >>> float(loss(LossInputs(teacher=same, student=same))[0])
    0.0
    """

    default_name = "soft_label_kl"

    def __init__(self, temperature=2.0, weight=1.0, name=None):
        super().__init__(weight, name)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise expected_error("temperature > 0", temperature=temperature)
        self.temperature = float(temperature)

    def call(self, inputs):
        t = self.temperature
        teacher = ops.cast(inputs.teacher["logits"], "float32") / t
        student = ops.cast(inputs.student["logits"], "float32") / t
        log_teacher = ops.log_softmax(teacher, axis=-1)
        log_student = ops.log_softmax(student, axis=-1)
        kl = ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)
        return _per_example(kl) * (t * t)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="kcompress")
class HardLabelCE(DistillationLoss):
    """Cross-entropy of the student's logits against the true labels.

    Integer labels use sparse cross-entropy; labels shaped like the logits
    (one-hot or soft) use categorical cross-entropy.

    Example:

    >>> import numpy as np
    >>> student = {"logits": np.array([[0.0, 0.0]])}
    >>> round(float(HardLabelCE()(LossInputs({}, student, labels=np.array([1])))[0]), 4)
    0.6931
    """

    default_name = "hard_label_ce"
    uses_labels = True

    def call(self, inputs):
        if inputs.labels is None:
            raise expected_error("labels (y) for HardLabelCE; pass alpha=1.0 to distill without labels", y=None)
        logits = ops.cast(inputs.student["logits"], "float32")
        labels = inputs.labels
        if len(labels.shape) == len(logits.shape) and labels.shape[-1] == logits.shape[-1] and logits.shape[-1] != 1:
            loss = keras.losses.categorical_crossentropy(ops.cast(labels, "float32"), logits, from_logits=True)
        else:
            labels = ops.reshape(labels, (-1,))
            loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return _per_example(loss)


class _LayerwiseLoss(DistillationLoss):
    def __init__(self, layers="uniform", weight=1.0, name=None):
        super().__init__(weight, name)
        self._layers = LayerMap.of(layers)

    @property
    def layers(self):
        return self._layers

    def get_config(self):
        return {**super().get_config(), "layers": self._layers.get_config()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layers = config.pop("layers")
        return cls(layers=LayerMap.from_config(layers) if isinstance(layers, dict) else layers, **config)

    def call(self, inputs):
        values = [self.pair_loss(inputs, teacher_layer, student_layer) for teacher_layer, student_layer in inputs.pairs]
        return ops.mean(ops.stack(values, axis=0), axis=0)


@keras.saving.register_keras_serializable(package="kcompress")
class HiddenStateMSE(_LayerwiseLoss):
    """Mean squared error between mapped teacher and student hidden states.

    When the widths differ, the student's states pass through a learned
    linear projection (trained with the student, not part of it).

    Args:
        layers: A `LayerMap`, ``"uniform"``, ``"last"`` or explicit
            ``(teacher_layer, student_layer)`` pairs.
        weight: Weight of the term.
        name: Log name.

    Example:

    >>> import numpy as np
    >>> h = np.ones((1, 4, 8), "float32")
    >>> inputs = LossInputs({"hidden/1": h}, {"hidden/0": 0 * h}, pairs=((1, 0),),
    ...                     project=lambda key, x: x)
    >>> float(HiddenStateMSE()(inputs)[0])
    1.0
    """

    needs = "hidden"
    default_name = "hidden_mse"

    def pair_loss(self, inputs, teacher_layer, student_layer):
        key = f"hidden/{student_layer}"
        student = inputs.project(key, inputs.student[key])
        return _mse(inputs.teacher[f"hidden/{teacher_layer}"], student)


@keras.saving.register_keras_serializable(package="kcompress")
class EmbeddingMSE(DistillationLoss):
    """Mean squared error between teacher and student embedding outputs.

    The embedding output is the input of the first transformer block. A
    learned projection bridges different widths.

    Example:

    >>> import numpy as np
    >>> e = np.ones((1, 4, 8), "float32")
    >>> inputs = LossInputs({"embedding": e}, {"embedding": e}, project=lambda key, x: x)
    >>> float(EmbeddingMSE()(inputs)[0])
    0.0
    """

    needs = "embedding"
    default_name = "embedding_mse"

    def call(self, inputs):
        student = inputs.project("embedding", inputs.student["embedding"])
        return _mse(inputs.teacher["embedding"], student)


@keras.saving.register_keras_serializable(package="kcompress")
class AttentionKL(_LayerwiseLoss):
    """KL divergence between mapped teacher and student attention maps.

    ``KL(p_teacher || p_student)`` over the keys of each query, averaged
    over heads and queries (MiniLM's attention transfer). When the head
    counts differ, each model's maps are first averaged over its heads.

    Args:
        layers: A `LayerMap`, ``"uniform"``, ``"last"`` or explicit pairs.
        weight: Weight of the term.
        name: Log name.

    Example:

    >>> import numpy as np
    >>> p = np.full((1, 2, 3, 3), 1 / 3, "float32")
    >>> inputs = LossInputs({"attention/0": p}, {"attention/0": p}, pairs=((0, 0),))
    >>> abs(float(AttentionKL()(inputs)[0])) < 1e-6
    True
    """

    needs = "attention"
    default_name = "attention_kl"

    def pair_loss(self, inputs, teacher_layer, student_layer):
        teacher = ops.cast(inputs.teacher[f"attention/{teacher_layer}"], "float32")
        student = ops.cast(inputs.student[f"attention/{student_layer}"], "float32")
        if teacher.shape[1] != student.shape[1]:
            teacher = ops.mean(teacher, axis=1, keepdims=True)
            student = ops.mean(student, axis=1, keepdims=True)
        log_ratio = ops.log(ops.maximum(teacher, _EPSILON)) - ops.log(ops.maximum(student, _EPSILON))
        kl = ops.sum(teacher * log_ratio, axis=-1)
        return _per_example(kl)


def _mse(teacher, student):
    difference = ops.cast(student, "float32") - ops.cast(teacher, "float32")
    return _per_example(ops.square(difference))


def _per_example(values):
    """Mean over every axis but the first."""
    if len(values.shape) == 1:
        return values
    return ops.mean(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


def default_losses(
    *,
    temperature=2.0,
    alpha=0.5,
    hidden=None,
    attention=None,
    embedding=False,
    hidden_weight=1.0,
    attention_weight=1.0,
    embedding_weight=1.0,
):
    """The loss list the `Distiller`'s keyword arguments stand for.

    ``alpha * SoftLabelKL + (1 - alpha) * HardLabelCE``, plus hidden-state,
    attention and embedding terms when asked for.

    Example:

    >>> [type(loss).__name__ for loss in default_losses(alpha=1.0, hidden="last")]
    ['SoftLabelKL', 'HiddenStateMSE']
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise expected_error("alpha in [0, 1]", alpha=alpha)
    losses = []
    if alpha > 0:
        losses.append(SoftLabelKL(temperature=temperature, weight=alpha))
    else:
        SoftLabelKL(temperature=temperature)  # Still validates the temperature.
    if alpha < 1:
        losses.append(HardLabelCE(weight=1.0 - alpha))
    if hidden is not None:
        losses.append(HiddenStateMSE(layers=hidden, weight=hidden_weight))
    if attention is not None:
        losses.append(AttentionKL(layers=attention, weight=attention_weight))
    if embedding:
        losses.append(EmbeddingMSE(weight=embedding_weight))
    return losses


# Every loss class, by name: what `Distiller.get_config` stores.
LOSSES = {cls.__name__: cls for cls in (SoftLabelKL, HardLabelCE, HiddenStateMSE, EmbeddingMSE, AttentionKL)}
