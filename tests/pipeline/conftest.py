"""A tiny keras-hub text classifier (with its preprocessor) and a CSV of texts: the pipeline's inputs."""

import csv

import numpy as np

from kcompress.pipeline import DistillStage, ExportStage, PipelineConfig, PruneStage, QatStage, TeacherStage
from tests.helpers import bert_preprocessor, tiny_bert_classifier

WORDS = ["good", "great", "fine", "fun", "bad", "dull", "awful", "boring", "film", "plot", "a", "the"]


def write_tiny_classifier(path, layers=2):
    model = tiny_bert_classifier(preprocessor=bert_preprocessor(WORDS), layers=layers, seed=0)
    model.save(path)
    return path


def write_texts(path, n=96, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = int(rng.integers(0, 2))
            word = rng.choice(WORDS[:4] if label else WORDS[4:8])
            writer.writerow([f"a {word} film {rng.choice(WORDS[8:])}", "fresh" if label else "rotten"])
    return path


def tiny_config(tmp_path, **overrides):
    """Settings that run every stage on the tiny model in seconds."""
    values = dict(
        model=str(write_tiny_classifier(tmp_path / "teacher.keras", layers=2)),
        data=str(write_texts(tmp_path / "texts.csv")),
        train_size=64,
        test_size=16,
        teacher=TeacherStage(epochs=1, learning_rate=1e-3, batch_size=16),
        distill=DistillStage(student_layers=1, epochs=1, learning_rate=1e-3, batch_size=16),
        prune=PruneStage(sparsity=0.5, epochs=1, learning_rate=1e-3, batch_size=16),
        qat=QatStage(epochs=1, learning_rate=1e-4, batch_size=16, calibration_batches=1),
        export=ExportStage(runs=3, verify_samples=8),
    )
    values.update(overrides)
    return PipelineConfig(**values)
