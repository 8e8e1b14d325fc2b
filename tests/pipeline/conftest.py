"""A tiny keras-hub text classifier (with its preprocessor) and a CSV of texts: the pipeline's inputs."""

import csv

import keras
import keras_hub
import numpy as np
import pytest

from kcompress.pipeline import DistillStage, ExportStage, PipelineConfig, PruneStage, QatStage, TeacherStage

WORDS = ["good", "great", "fine", "fun", "bad", "dull", "awful", "boring", "film", "plot", "a", "the"]


def write_tiny_classifier(path, layers=2):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=layers,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=8,
    )
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
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


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
