"""The pipeline's configuration: small frozen dataclasses, readable from JSON or YAML."""

import dataclasses
import hashlib
import json
import os

from kcompress._errors import check_fraction, check_int, expected_error

PRUNE_KINDS = ("unstructured", "structured")


def _check_epochs(name, value):
    return check_int(name, value, minimum=0)


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise expected_error(f"{name} > 0", **{name: value})


@dataclasses.dataclass(frozen=True)
class TeacherStage:
    """Fine-tunes the starting model on the training examples (``epochs=0``: use as is)."""

    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 32
    skip: bool = False

    def __post_init__(self):
        _check_epochs("teacher.epochs", self.epochs)
        _check_rate("teacher.learning_rate", self.learning_rate)
        check_int("teacher.batch_size", self.batch_size, minimum=1)


@dataclasses.dataclass(frozen=True)
class DistillStage:
    """Distils the teacher into a shallower student (see `shallow_student`).

    Soft and hard labels by default. `hidden` and `attention` add the
    intermediate-layer losses at weight 1; on MiniLM -> 2 layers they made
    the student collapse to one class (`benchmarks/distill_minilm.py`), so
    they are off until tuned.
    """

    student_layers: int = 2
    epochs: int = 2
    learning_rate: float = 5e-5
    batch_size: int = 32
    alpha: float = 0.5
    temperature: float = 2.0
    hidden: bool = False
    attention: bool = False
    skip: bool = False

    def __post_init__(self):
        check_int("distill.student_layers", self.student_layers, minimum=1)
        _check_epochs("distill.epochs", self.epochs)
        _check_rate("distill.learning_rate", self.learning_rate)
        _check_rate("distill.temperature", self.temperature)
        check_int("distill.batch_size", self.batch_size, minimum=1)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise expected_error("distill.alpha in [0, 1]", **{"distill.alpha": self.alpha})


@dataclasses.dataclass(frozen=True)
class PruneStage:
    """Prunes the model, then fine-tunes it.

    ``kind="unstructured"``: magnitude pruning to `sparsity` (zeros, smaller
    gzipped files). ``kind="structured"``: removes `heads` and `ffn`
    fractions of attention heads and FFN neurons (a smaller, faster model).
    """

    kind: str = "unstructured"
    sparsity: float = 0.5
    heads: float = 0.5
    ffn: float = 0.5
    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 32
    skip: bool = False

    def __post_init__(self):
        if self.kind not in PRUNE_KINDS:
            raise expected_error(f"prune.kind in {PRUNE_KINDS}", **{"prune.kind": self.kind})
        for name in ("sparsity", "heads", "ffn"):
            check_fraction(f"prune.{name}", getattr(self, name))
        _check_epochs("prune.epochs", self.epochs)
        _check_rate("prune.learning_rate", self.learning_rate)
        check_int("prune.batch_size", self.batch_size, minimum=1)


@dataclasses.dataclass(frozen=True)
class QatStage:
    """Quantization-aware fine-tuning for a full-int8 `.tflite`."""

    epochs: int = 1
    learning_rate: float = 2e-5
    batch_size: int = 32
    calibration_batches: int = 4
    skip: bool = False

    def __post_init__(self):
        _check_epochs("qat.epochs", self.epochs)
        _check_rate("qat.learning_rate", self.learning_rate)
        check_int("qat.batch_size", self.batch_size, minimum=1)
        check_int("qat.calibration_batches", self.calibration_batches, minimum=1)


@dataclasses.dataclass(frozen=True)
class ExportStage:
    """Int8 `.tflite` export, verification, Edge TPU report and LiteRT latency.

    ``float_ops`` (with ``mode="int8"``) names ops to compute in float32
    between int8 tensors for phone CPUs, e.g. ``["SOFTMAX", "GELU", "RSQRT",
    "MAXIMUM"]`` (see `tflite_export.float_ops`); the file is then not for an
    Edge TPU.
    """

    mode: str = "int8"
    threads: int = 2
    runs: int = 50
    verify_samples: int = 256
    float_ops: tuple = ()

    def __post_init__(self):
        from tflite_export import MODES
        from tflite_export.float_ops import FLOAT_OPS

        if self.mode not in MODES:
            raise expected_error(f"export.mode in {MODES}", **{"export.mode": self.mode})
        names = self.float_ops
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or any(n not in FLOAT_OPS for n in names):
            expectation = f"export.float_ops as a list of names among {FLOAT_OPS}"
            raise expected_error(expectation, **{"export.float_ops": names})
        if names and self.mode != "int8":
            raise expected_error("export.float_ops only with export.mode='int8'", **{"export.mode": self.mode})
        object.__setattr__(self, "float_ops", tuple(names))
        check_int("export.threads", self.threads, minimum=1)
        check_int("export.runs", self.runs, minimum=1)
        check_int("export.verify_samples", self.verify_samples, minimum=1)


_SECTIONS = {
    "teacher": TeacherStage,
    "distill": DistillStage,
    "prune": PruneStage,
    "qat": QatStage,
    "export": ExportStage,
}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything a pipeline run needs.

    Args:
        model: ``"minilm"`` (the shipped all-MiniLM-L6-v2) or the path of a
            ``.keras`` classifier: a keras-hub text classifier saved with
            its preprocessor, or (for a folder of images) a Keras image
            classifier taking ``(batch, height, width, channels)`` float
            pixels in ``[0, 255]`` (see `kcompress.pipeline.images`).
        data: ``"rotten_tomatoes"`` (the shipped snippets), the path of a
            UTF-8 CSV file with ``text`` and ``label`` columns: a label on
            every row, at least 2 labels, and at least 5 rows of each
            (``data.MIN_EXAMPLES_PER_CLASS``: a fifth of the rows, up to
            `test_size`, is split off as the test set, so 5 rows give a
            label 4 to train on and 1 to test on); or a folder of images
            with one subfolder per class, at least 2 classes of at least 5
            images each (the layout `keras.utils.image_dataset_from_directory`
            reads). A folder skips the text-only stages (distill, and prune
            with ``kind="structured"``).
        train_size: Training examples used (``None``: all).
        test_size: Held-out examples used for accuracy.
        sequence_length: Tokens per text (MiniLM only; a saved model keeps
            its preprocessor's; images are read at the model's input size).
        num_classes: Classes. ``None`` (the default): one per label in
            `data`. A number must be that count (a check: the MiniLM head
            and ``labels.txt`` follow the data); a ``.keras`` `model` must
            have that many outputs.
        seed: Seed of data splits and initialisation.
        teacher, distill, prune, qat, export: The stages' settings.

    Example:

    >>> config = PipelineConfig.from_dict({"train_size": 500, "prune": {"sparsity": 0.7}})
    >>> config.prune.sparsity, config.distill.student_layers
    (0.7, 2)
    >>> PipelineConfig.from_dict({"prune": {"sparsity": 1.5}})
    Traceback (most recent call last):
    ...
    ValueError: Expected prune.sparsity in [0, 1). Received: prune.sparsity=1.5
    """

    model: str = "minilm"
    data: str = "rotten_tomatoes"
    train_size: int = 4000
    test_size: int = 1280
    sequence_length: int = 48
    num_classes: int | None = None
    seed: int = 0
    teacher: TeacherStage = TeacherStage()
    distill: DistillStage = DistillStage()
    prune: PruneStage = PruneStage()
    qat: QatStage = QatStage()
    export: ExportStage = ExportStage()

    def __post_init__(self):
        if self.train_size is not None:
            check_int("train_size", self.train_size, minimum=2)
        check_int("test_size", self.test_size, minimum=1)
        check_int("sequence_length", self.sequence_length, minimum=2)
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes, minimum=2)
        check_int("seed", self.seed, minimum=0)

    @classmethod
    def demo(cls, quick=False):
        """The settings of `kcompress demo` (``quick``: a one-minute smoke run)."""
        if quick:
            return cls(
                train_size=256,
                test_size=128,
                sequence_length=32,
                distill=DistillStage(epochs=1),
                prune=PruneStage(epochs=1),
                qat=QatStage(epochs=1, calibration_batches=2),
                export=ExportStage(runs=20, verify_samples=64),
            )
        return cls(
            train_size=2000,
            test_size=640,
            teacher=TeacherStage(epochs=1),
            distill=DistillStage(epochs=3, learning_rate=1e-4),
            export=ExportStage(runs=50),
        )

    @classmethod
    def from_dict(cls, values):
        """Builds a config from nested dicts; unknown keys are errors."""
        if not isinstance(values, dict):
            raise expected_error("a mapping of settings", config=type(values).__name__)
        values = dict(values)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise expected_error(f"settings among {sorted(known)}", unknown=unknown)
        for name, section in _SECTIONS.items():
            if name in values:
                values[name] = _section(section, name, values[name])
        return cls(**values)

    @classmethod
    def from_file(cls, path):
        """Reads a ``.json`` or ``.yaml``/``.yml`` file."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise expected_error("an existing config file", config=path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            if path.endswith((".yaml", ".yml")):
                import yaml

                values = yaml.safe_load(text)
            else:
                values = json.loads(text)
        except Exception as error:  # noqa: BLE001 (any parse error becomes one clear message)
            raise expected_error("a valid JSON or YAML config file", config=path, error=str(error)) from error
        return cls.from_dict(values or {})

    def to_dict(self):
        """Nested plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    def fingerprint(self, *sections):
        """Hash of the top-level settings and the named sections: a stage's identity."""
        values = {k: v for k, v in self.to_dict().items() if k not in _SECTIONS}
        values.update({name: dataclasses.asdict(getattr(self, name)) for name in sections})
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _section(cls, name, values):
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise expected_error(f"{name} to be a mapping of settings", **{name: values})
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise expected_error(f"{name} settings among {sorted(known)}", unknown=unknown)
    return cls(**values)
