"""`run_pipeline`: every stage in order, resumable, into one run folder."""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kcompress import distribution
from kcompress._atomic import write_atomic
from kcompress._errors import expected_error
from kcompress.pipeline import measure
from kcompress.pipeline._tensorflow import TensorFlowWorker, save_tokens
from kcompress.pipeline.data import Tokens, head, tokenize
from kcompress.pipeline.export import CALIBRATION_EXAMPLES, run_export
from kcompress.pipeline.images import ImageData, ends_in_softmax, image_input, read_images
from kcompress.pipeline.report import report_table, write_report
from kcompress.pipeline.sources import load_data
from kcompress.pipeline.stages import STAGES, text_only

_DONE = "stage.json"


@dataclasses.dataclass
class Context:
    """What the stages share during a run.

    `data` is the config's `TextData` or `ImageData`; `from_logits` whether
    the classifier outputs logits (keras-hub, most Keras heads) rather than
    softmax probabilities (a `keras.applications` head).
    """

    config: object
    out: str
    strategy: object
    verbose: int
    data: object
    tokens: Tokens = None
    preprocessor: object = None
    from_logits: bool = True
    chief: bool = True
    scratch: str = None
    worker: object = None
    model_path: str = None
    _tokens_path: str = None

    @property
    def images(self):
        return isinstance(self.data, ImageData)

    @property
    def fit_verbose(self):
        return 2 if self.verbose else 0

    @property
    def files(self):
        """Where this process may write run files: the run folder (the chief), else its private scratch folder."""
        return self.out if self.chief else self.scratch

    def tokens_file(self):
        """The test tokens and the export's calibration examples as an ``.npz`` in the scratch folder (written once).

        What the TensorFlow worker measures and exports with.
        """
        if self._tokens_path is None:
            data = self.tokens
            calibration = CALIBRATION_EXAMPLES
            part = Tokens(head(data.x_train, calibration), data.y_train[:calibration], data.x_test, data.y_test)
            self._tokens_path = os.path.join(self.scratch, "tokens.npz")
            save_tokens(self._tokens_path, part)
        return self._tokens_path

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def prepare_inputs(self, model):
        """Makes the arrays every stage trains and measures on, with the teacher model.

        Images are read at the model's input size; texts are tokenized once
        with the model's preprocessor, which is then detached: every stage
        works on token ids (the `.tflite` input).
        """
        if self.images:
            size = image_input(model, self.config)
            data = self.data
            self.from_logits = not ends_in_softmax(model)
            self.tokens = Tokens(
                read_images(data.train, size),
                np.asarray(data.train.labels),
                read_images(data.test, size),
                np.asarray(data.test.labels),
            )
            return
        preprocessor = getattr(model, "preprocessor", None)
        if preprocessor is None:
            raise expected_error(
                "a keras-hub text classifier saved with its preprocessor (to tokenize the texts)",
                model=self.config.model,
            )
        texts = self.data
        self.preprocessor = preprocessor
        self.tokens = Tokens(
            tokenize(preprocessor, texts.train.texts),
            np.asarray(texts.train.labels),
            tokenize(preprocessor, texts.test.texts),
            np.asarray(texts.test.labels),
        )
        model.preprocessor = None


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    """What a run produced.

    Attributes:
        out: The run folder.
        rows: One dict of measurements per stage.
        table: The report table (Markdown).
        tflite_path: The exported `.tflite`.
        report_md: ``report.md``.
        report_png: ``report.png``.
        resumed: Names of the stages loaded from an earlier run.
        model: The last stage's Keras model (the one exported).
    """

    out: str
    rows: list
    table: str
    tflite_path: str
    report_md: str
    report_png: str
    resumed: tuple
    model: object = None


def run_pipeline(config, out, *, strategy=None, verbose=1):
    """Runs teacher -> distill -> prune -> QAT -> int8 export into `out`.

    The data decides the kind of run: texts (the shipped snippets or a CSV
    file) go through every stage; for a folder of images (one subfolder per
    class) and a Keras image classifier, the stages that only apply to a
    transformer text classifier (distillation, structured pruning) are
    skipped with a line saying so.

    Each stage writes its model to ``out/NN_<stage>/`` through a temporary
    folder renamed when complete, with a ``stage.json`` holding its
    measurements and a fingerprint of the settings it depends on. Running
    again with the same settings loads finished stages instead of redoing
    them, so an interrupted run resumes where it stopped; changing a
    stage's settings reruns it and every later stage. Stages with
    ``skip=True`` pass their input through.

    Under another Keras backend than TensorFlow (``KERAS_BACKEND=jax``)
    the stages train in this process, and a TensorFlow-backend child
    process (started once per run) measures each saved ``model.keras``
    and does the export: TFLite conversion takes a TensorFlow model.

    Over several processes (`kcompress.distribution.join_processes` called
    first in each, under JAX), every process runs the same stages on its
    part of the training examples, resuming the same ones (every process
    reads the run folder before any writes: it must be on a filesystem
    they share), and they end with the same model. Only process 0 writes
    the run folder, measures and exports; the others return its rows.

    Args:
        config: A `PipelineConfig`.
        out: Run folder (created if needed).
        strategy: Optional `tf.distribute.Strategy` for model building and
            training.
        verbose: 0 for silence, 1 for stage lines and Keras progress.

    Returns:
        A `PipelineResult`.
    """
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise expected_error("an output folder, not a file", out=out)
    chief = distribution.is_chief()
    if chief:
        os.makedirs(out, exist_ok=True)
    say = print if verbose and chief else (lambda *a, **k: None)
    context = Context(config, out, strategy, verbose, data=load_data(config), chief=chief)
    noun = "images" if context.images else "texts"
    say(
        f"kcompress pipeline -> {out}: {len(context.data.train):,} training and {len(context.data.test):,} "
        f"test {noun}",
        flush=True,
    )
    context.scratch = tempfile.mkdtemp(prefix="kcompress-pipeline-")
    if chief and keras.backend.backend() != "tensorflow":
        context.worker = TensorFlowWorker(context.scratch)
    try:
        return _run_stages(context, say)
    finally:
        if context.worker is not None:
            context.worker.close()
        shutil.rmtree(context.scratch, ignore_errors=True)


def _active_stages(context, say):
    active = []
    for stage in STAGES:
        reason = text_only(stage, context.config) if context.images else None
        if reason:
            say(f"    {stage.name}: skipped for images ({reason})", flush=True)
        elif not getattr(context.config, stage.name).skip or stage.name == "teacher":
            active.append(stage)
    return active


def _run_stages(context, say):
    """Every stage in every process (their training steps run together); only the chief writes the run folder.

    What was done in an earlier run is read from the run folder by every
    process before any of them writes, so all resume the same stages.
    """
    config, out = context.config, context.out
    active = _active_stages(context, say)
    total = len(active) + 1
    plans = []
    for number, stage in enumerate(active, start=1):
        directory = os.path.join(out, f"{number:02d}_{stage.name}")
        fingerprint = stage_fingerprint(config, stage.sections, STAGES[: STAGES.index(stage) + 1])
        plans.append((number, stage, directory, fingerprint, _read_done(directory, fingerprint)))
    export_directory = os.path.join(out, f"{total:02d}_export")
    export_fingerprint = stage_fingerprint(config, ("teacher", "distill", "prune", "qat", "export"), STAGES)
    export_done = _read_done(export_directory, export_fingerprint)
    distribution.wait_for_processes("pipeline: run folder read")
    rows, resumed = [], []
    model = None
    for number, stage, directory, fingerprint, done in plans:
        started = time.perf_counter()
        if done is not None:
            say(f"[{number}/{total}] {stage.name}: done in an earlier run, loading {directory}", flush=True)
            model = stage.load(directory, context, model)
            row = done["row"]
            resumed.append(stage.name)
        else:
            say(f"[{number}/{total}] {stage.name}", flush=True)
            keras.utils.set_random_seed(config.seed + number)
            model = stage.run(context, model)
            row = None
            if context.chief:
                with _this_process_only():
                    row = _finish(stage, model, context, directory, fingerprint, time.perf_counter() - started)
        distribution.wait_for_processes(f"pipeline: {stage.name} written")
        context.model_path = os.path.join(directory, "model.keras")
        rows.append(row)
        if row is not None:
            say(f"    {measure.row_line(row)}", flush=True)

    if export_done is not None:
        say(f"[{total}/{total}] export: done in an earlier run ({export_directory})", flush=True)
        row = export_done["row"]
        resumed.append("export")
    elif context.chief:
        say(f"[{total}/{total}] export ({config.export.mode} .tflite, verify, Edge TPU, latency)", flush=True)
        with _this_process_only():
            row = _in_stage_folder(export_directory, export_fingerprint, lambda tmp: run_export(context, model, tmp))
    if context.chief:
        say(f"    {measure.row_line(row)}", flush=True)
        rows.append(row)
        tflite_path = os.path.join(export_directory, row["file"])
        report_md, report_png, table = write_report(out, config, rows, tflite_path)
    distribution.wait_for_processes("pipeline: report written")
    if not context.chief:  # The rows the chief measured and wrote.
        rows, tflite_path, report_md, report_png, table = _read_report(out, export_directory)
    return PipelineResult(out, rows, table, tflite_path, report_md, report_png, tuple(resumed), model)


@contextlib.contextmanager
def _this_process_only():
    """Keras' distribution off inside: what only the chief does (saving, measuring) must not wait for the others.

    Under a `keras.distribution`, creating a variable (a fresh optimizer to
    save) is a collective of every process.
    """
    current = keras.distribution.distribution()
    if current is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def _read_report(out, export_directory):
    """What the chief wrote: ``(rows, tflite_path, report_md, report_png, table)`` (another process' result)."""
    rows = json.loads(Path(out, "report.json").read_text(encoding="utf-8"))["rows"]
    table = report_table(rows)
    tflite_path = os.path.join(export_directory, rows[-1]["file"])
    return rows, tflite_path, os.path.join(out, "report.md"), os.path.join(out, "report.png"), table


def stage_fingerprint(config, sections, stages):
    """A stage folder's identity: its settings, and the save format of it and the stages before it.

    Example:

    >>> from kcompress.pipeline.config import PipelineConfig
    >>> from kcompress.pipeline.stages import STAGES
    >>> config = PipelineConfig()
    >>> stage_fingerprint(config, ("teacher",), STAGES[:1]) == config.fingerprint("teacher")
    True
    >>> stage_fingerprint(config, STAGES[3].sections, STAGES[:4]).endswith("-qat2")
    True
    """
    fingerprint = config.fingerprint(*sections)
    formats = "".join(f"-{stage.name}{stage.format}" for stage in stages if stage.format != 1)
    return fingerprint + formats


def _finish(stage, model, context, directory, fingerprint, seconds):
    def write(tmp):
        stage.save(model, tmp, context)
        return measure.keras_row(stage.name, model, tmp, context, seconds)

    return _in_stage_folder(directory, fingerprint, write)


def _in_stage_folder(directory, fingerprint, produce):
    """Runs ``produce(tmp) -> row`` in a temporary folder, then renames it to `directory`."""
    parent, name = os.path.split(directory)
    tmp = os.path.join(parent, f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    row = produce(tmp)
    text = json.dumps({"fingerprint": fingerprint, "row": row}, indent=2, default=float)
    write_atomic(os.path.join(tmp, _DONE), lambda f: f.write(text.encode()))
    if os.path.exists(directory):
        stale = os.path.join(parent, f".{name}.stale")
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(directory, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(tmp, directory)
    return row


def _read_done(directory, fingerprint):
    path = Path(directory) / _DONE
    if not path.is_file():
        return None
    done = json.loads(path.read_text(encoding="utf-8"))
    return done if done.get("fingerprint") == fingerprint else None
