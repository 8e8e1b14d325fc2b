"""One pipeline: fine-tune teacher -> distil -> prune -> QAT -> int8 `.tflite` -> verify -> report.

For texts (a keras-hub classifier) or images (a Keras image classifier and a folder of class subfolders).
"""

from kcompress.pipeline.config import (
    DistillStage,
    ExportStage,
    PipelineConfig,
    PruneStage,
    QatStage,
    TeacherStage,
)
from kcompress.pipeline.data import TextData, load_text_data, read_labelled_csv, tokenize
from kcompress.pipeline.images import ImageData, ImageFiles, scan_image_folder
from kcompress.pipeline.run import PipelineResult, run_pipeline
from kcompress.pipeline.sources import load_data
from kcompress.pipeline.stages import STAGES, Stage

__all__ = [
    "DistillStage",
    "ExportStage",
    "ImageData",
    "ImageFiles",
    "PipelineConfig",
    "PipelineResult",
    "PruneStage",
    "QatStage",
    "STAGES",
    "Stage",
    "TeacherStage",
    "TextData",
    "load_data",
    "load_text_data",
    "read_labelled_csv",
    "run_pipeline",
    "scan_image_folder",
    "tokenize",
]
