"""One pipeline: fine-tune teacher -> distil -> prune -> QAT -> int8 `.tflite` -> verify -> report."""

from kcompress.pipeline.config import (
    DistillStage,
    ExportStage,
    PipelineConfig,
    PruneStage,
    QatStage,
    TeacherStage,
)
from kcompress.pipeline.data import TextData, load_text_data, read_labelled_csv, tokenize
from kcompress.pipeline.run import PipelineResult, run_pipeline
from kcompress.pipeline.stages import STAGES, Stage

__all__ = [
    "DistillStage",
    "ExportStage",
    "PipelineConfig",
    "PipelineResult",
    "PruneStage",
    "QatStage",
    "STAGES",
    "Stage",
    "TeacherStage",
    "TextData",
    "load_text_data",
    "read_labelled_csv",
    "run_pipeline",
    "tokenize",
]
