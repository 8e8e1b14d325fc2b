"""The pipeline's stages: teacher -> distill -> prune -> QAT -> export.

Each stage is a `Stage`: how it runs (from the previous stage's model), how
its model is saved to and loaded from its folder (so an interrupted run
resumes), and which config sections decide its result.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from kcompress import distillation, distribution, pruning, quantization
from kcompress.data import load_minilm_classifier
from kcompress.pipeline.data import check_outputs, head

# Batches of training data that score heads and FFN neurons for structured pruning.
_IMPORTANCE_BATCHES = 4


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: Folder and report name.
        sections: Config sections this stage's result depends on, with the
            earlier stages' (changing one reruns this stage).
        run: ``run(context, model) -> model``.
        save: ``save(model, directory, context)``.
        load: ``load(directory, context, previous_model) -> model``.
        format: Version of what `save` writes. Bumped when a model saved
            before can no longer be loaded (a wrapper lost or gained
            variables): a folder of another format is redone instead of
            failing to load, and so are the later stages' folders.
    """

    name: str
    sections: tuple
    run: object
    save: object
    load: object
    format: int = 1


def _save_keras(model, directory, context):
    """Saves the model (a text classifier with the run's preprocessor, so the file also takes raw texts).

    The optimizer is saved fresh (no moments): each stage trains with an
    optimizer of its own, and a keras-hub task, which compiles itself when
    loaded, warns about a saved optimizer of another size.
    """
    optimizer = getattr(model, "optimizer", None)
    if context.preprocessor is not None:
        model.preprocessor = context.preprocessor
    if optimizer is not None:
        with context.scope():
            model.optimizer = type(optimizer).from_config(optimizer.get_config())
    try:
        model.save(os.path.join(directory, "model.keras"))
    finally:
        if context.preprocessor is not None:
            model.preprocessor = None
        model.optimizer = optimizer


def _load(directory, context):
    """The stage's saved model, uncompiled (every stage compiles what it trains)."""
    with context.scope():
        return keras.models.load_model(os.path.join(directory, "model.keras"), compile=False)


def _load_keras(directory, context, previous):
    model = _load(directory, context)
    if getattr(model, "preprocessor", None) is not None:
        model.preprocessor = None  # Stages train and measure on token ids.
    return model


def _load_teacher(directory, context, previous):
    model = _load(directory, context)
    context.prepare_inputs(model)
    return model


def compile_classifier(model, learning_rate, from_logits=True):
    """Adam + sparse cross-entropy (on logits by default) + accuracy (how keras-hub compiles a classifier)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    return model


def _fit(context, model, settings, **kwargs):
    """Trains on the training tokens, reshuffled every epoch.

    Through a shuffled `tf.data.Dataset`: a keras-hub task batches arrays
    into a dataset of its own in their order (and warns that ``shuffle=True``
    is ignored). Over several processes (`kcompress.distribution`) each
    process feeds its own part of the examples in batches of its share of
    ``settings.batch_size``, so a step's batch is the setting's size.
    """
    x, y = distribution.process_part(context.tokens.x_train, context.tokens.y_train)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=context.config.seed, reshuffle_each_iteration=True)
        .batch(local_batch_size(settings.batch_size))
    )
    return model.fit(dataset, epochs=settings.epochs, shuffle=False, verbose=context.fit_verbose, **kwargs)


def local_batch_size(batch_size):
    """This process' share of a step's `batch_size` (all of it in a single process; at least 1).

    Example:

    >>> local_batch_size(32)
    32
    """
    return max(1, batch_size // distribution.process_count())


def run_teacher(context, model):
    """Loads the starting model, makes the inputs with it (tokens or images), and fine-tunes it on them."""
    config = context.config
    num_classes = len(context.data.class_names)  # The data's labels (load_data checked num_classes).
    with context.scope():
        if config.model == "minilm":
            model = load_minilm_classifier(num_classes=num_classes, sequence_length=config.sequence_length)
        else:
            model = keras.models.load_model(config.model, compile=False)  # Compiled below to train.
            check_model_outputs(model, num_classes, config)
    context.prepare_inputs(model)  # Detaches a preprocessor: every stage trains on token ids (or images).
    if config.teacher.epochs:
        with context.scope():
            compile_classifier(model, config.teacher.learning_rate, context.from_logits)
        _fit(context, model, config.teacher)
    return model


def check_model_outputs(model, num_classes, config):
    """Raises unless a loaded classifier has one output per label of the data."""
    outputs = getattr(model, "num_classes", None)
    if outputs is None:
        try:
            outputs = model.outputs[0].shape[-1]
        except (AttributeError, IndexError, TypeError, ValueError):
            return  # Unknown until called: fitting will tell.
    check_outputs(outputs, num_classes, config)


def run_distill(context, teacher):
    """Distils the teacher into a shallower copy of itself, with a teacher cache on disk."""
    settings = context.config.distill
    with context.scope():
        student = distillation.shallow_student(teacher, settings.student_layers)
        distiller = distillation.Distiller(
            teacher,
            student,
            alpha=settings.alpha,
            temperature=settings.temperature,
            hidden="uniform" if settings.hidden else None,
            attention="uniform" if settings.attention else None,
            cache=distillation.TeacherCache(os.path.join(context.files, "teacher_cache"), storage_dtype="float16"),
        )
        distiller.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), metrics=["accuracy"])
    if settings.epochs:
        _fit(context, distiller, settings)
    return distiller.student


def run_prune(context, model):
    """Prunes (unstructured magnitude, or whole heads and FFN neurons) and fine-tunes."""
    return PRUNERS[context.config.prune.kind](context, model)


def _prune_unstructured(context, model):
    settings = context.config.prune
    examples = len(distribution.process_part(context.tokens.y_train))
    steps = max(1, int(np.ceil(examples / local_batch_size(settings.batch_size)))) * max(1, settings.epochs)
    schedule = pruning.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=settings.sparsity,
        begin_step=0,
        end_step=max(1, int(steps * 0.8)),
        frequency=max(1, steps // 10),
    )
    with context.scope():
        pruned = compile_classifier(
            pruning.prune_low_magnitude(model, schedule), settings.learning_rate, context.from_logits
        )
    if settings.epochs:
        _fit(context, pruned, settings, callbacks=[pruning.UpdatePruningStep()])
    with context.scope():
        return pruning.strip_pruning(pruned)


def _prune_structured(context, model):
    from kcompress import structured

    settings = context.config.prune
    data = context.tokens
    batch_size = min(settings.batch_size, len(data.y_train))
    batches = max(1, min(_IMPORTANCE_BATCHES, len(data.y_train) // batch_size))
    examples = batches * batch_size
    importance = ({k: v[:examples] for k, v in data.x_train.items()}, data.y_train[:examples])
    with context.scope():
        pruned = structured.prune_transformer(
            model,
            heads=settings.heads,
            ffn=settings.ffn,
            importance_data=importance,
            batches=batches,
            batch_size=batch_size,
            verbose=context.verbose,
        )
        compile_classifier(pruned, settings.learning_rate, context.from_logits)
    if settings.epochs:
        _fit(context, pruned, settings)
    return pruned


PRUNERS = {"unstructured": _prune_unstructured, "structured": _prune_structured}


def run_qat(context, model):
    """Quantization-aware fine-tuning (ranges calibrated first)."""
    settings = context.config.qat
    data = context.tokens
    with context.scope():
        qat = quantization.quantize_model(model)
        quantization.calibrate(qat, head(data.x_train, settings.calibration_batches * settings.batch_size))
        compile_classifier(qat, settings.learning_rate, context.from_logits)
    if settings.epochs:
        _fit(context, qat, settings)
    return qat


def text_only(stage, config):
    """Why `stage` (with `config`'s settings) does not apply to an image classifier, or ``None``.

    Example:

    >>> from kcompress.pipeline import PipelineConfig
    >>> [text_only(stage, PipelineConfig()) is not None for stage in STAGES]
    [False, True, False, False]
    """
    if stage.name == "distill":
        return "distillation builds a shallower copy of a transformer text classifier"
    if stage.name == "prune" and config.prune.kind == "structured":
        return "structured pruning removes attention heads and FFN neurons of a transformer; use kind unstructured"
    return None


STAGES = (
    Stage("teacher", ("teacher",), run_teacher, _save_keras, _load_teacher),
    Stage("distill", ("teacher", "distill"), run_distill, _save_keras, _load_keras),
    Stage("prune", ("teacher", "distill", "prune"), run_prune, _save_keras, _load_keras),
    # Format 2: tanh and sigmoid outputs on their int8 kernels' fixed grids (no range variables).
    Stage("qat", ("teacher", "distill", "prune", "qat"), run_qat, _save_keras, _load_keras, format=2),
)
