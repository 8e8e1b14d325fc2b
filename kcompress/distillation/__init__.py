"""Knowledge distillation for Keras 3: a `Distiller` model, losses, teacher cache."""

from kcompress.distillation.cache import TeacherCache, example_keys
from kcompress.distillation.distiller import Distiller
from kcompress.distillation.layer_map import LayerMap
from kcompress.distillation.losses import (
    AttentionKL,
    DistillationLoss,
    EmbeddingMSE,
    HardLabelCE,
    HiddenStateMSE,
    LossInputs,
    SoftLabelKL,
    default_losses,
)
from kcompress.distillation.recorder import FeatureRecorder, Record
from kcompress.distillation.students import shallow_student

__all__ = [
    "AttentionKL",
    "DistillationLoss",
    "Distiller",
    "EmbeddingMSE",
    "FeatureRecorder",
    "HardLabelCE",
    "HiddenStateMSE",
    "LayerMap",
    "LossInputs",
    "Record",
    "SoftLabelKL",
    "TeacherCache",
    "default_losses",
    "example_keys",
    "shallow_student",
]
