"""`Distiller`: train a small student from a frozen teacher inside `fit`."""

import threading
import time

import keras
import tensorflow as tf
from keras import ops

from kcompress._errors import expected_error
from kcompress.distillation.cache import (
    TeacherCache,
    check_backend,
    input_batches,
    teacher_pass,
    teacher_signature,
)
from kcompress.distillation.losses import DistillationLoss, LossInputs, default_losses
from kcompress.distillation.recorder import FeatureRecorder

_STEP = threading.local()
_CACHE_BATCH_SIZE = 32


@keras.saving.register_keras_serializable(package="kcompress")
class Distiller(keras.Model):
    """Trains `student` to imitate a frozen `teacher` with `fit`.

    Losses combine soft labels at a temperature, hard labels, hidden states
    (through a learned projection when widths differ), attention maps (head
    counts may differ) and embedding outputs; layers are paired with a
    `LayerMap`. Intermediate tensors are read from keras-hub BERT-family
    models, or any model with transformer blocks, without editing them (see
    `FeatureRecorder`).

    `compile(optimizer, metrics=...)`, `fit`, `evaluate` and `predict` behave
    like any Keras model: metrics are computed on the student's outputs,
    `predict` returns them, and each loss term is logged under its name.
    With a `cache`, `fit` first runs the teacher once over the training data
    (see `TeacherCache`) and later epochs read its outputs instead.

    Backends and precision: the Distiller trains under TensorFlow (also
    under a `tf.distribute` strategy) and JAX (Keras' stateless JAX
    `train_step` calls `compute_loss`, which reads the teacher through the
    step's variable mapping); it saves to and loads from `.keras` under both.
    A teacher cache needs TensorFlow or JAX (see `TeacherCache`); any other
    backend raises ``Expected a Keras backend in ...`` when the Distiller is
    made. Under a ``mixed_float16`` / ``mixed_bfloat16`` policy the student
    may compute in 16 bits: teacher tensors are cast to float32 and every
    loss is computed in float32.

    Args:
        teacher: Keras model returning logits. Frozen (``trainable=False``).
        student: Keras model returning logits of the same shape.
        losses: Optional list of `DistillationLoss` objects. When given, the
            keyword arguments below that build losses are ignored.
        temperature: Softmax temperature of the soft-label loss.
        alpha: Weight in [0, 1] of the soft-label loss; the hard-label loss
            gets ``1 - alpha`` (``alpha=1`` needs no labels).
        hidden: `LayerMap`, ``"uniform"``, ``"last"`` or pairs: adds a
            hidden-state MSE.
        attention: Same, for an attention-map KL.
        embedding: Whether to add an embedding-output MSE.
        hidden_weight: Weight of the hidden-state loss.
        attention_weight: Weight of the attention loss.
        embedding_weight: Weight of the embedding loss.
        teacher_layers: Optional names of the teacher's blocks (default:
            keras-hub ``transformer_layers``, or layers holding attention).
        student_layers: Same for the student.
        cache: None, True (in memory) or a `TeacherCache`.
        name: Model name.

    Example:

    >>> import numpy as np
    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width, "relu"),
    ...                              keras.layers.Dense(3)])
    >>> distiller = Distiller(mlp(32), mlp(8), temperature=4.0, alpha=0.9, cache=True)
    >>> distiller.compile(optimizer="adam", metrics=["accuracy"])
    >>> x, y = np.random.rand(64, 4), np.random.randint(0, 3, 64)
    >>> history = distiller.fit(x, y, epochs=2, batch_size=16, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'hard_label_ce', 'loss', 'soft_label_kl']
    >>> distiller.predict(x[:2], verbose=0).shape
    (2, 3)
    """

    def __init__(
        self,
        teacher,
        student,
        losses=None,
        *,
        temperature=2.0,
        alpha=0.5,
        hidden=None,
        attention=None,
        embedding=False,
        hidden_weight=1.0,
        attention_weight=1.0,
        embedding_weight=1.0,
        teacher_layers=None,
        student_layers=None,
        cache=None,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise expected_error(f"the {role} to be a keras.Model", **{role: model})
        _check_output_shapes(teacher, student)
        if losses is None:
            losses = default_losses(
                temperature=temperature,
                alpha=alpha,
                hidden=hidden,
                attention=attention,
                embedding=embedding,
                hidden_weight=hidden_weight,
                attention_weight=attention_weight,
                embedding_weight=embedding_weight,
            )
        losses = list(losses) if isinstance(losses, (list, tuple)) else [losses]
        if not losses or not all(isinstance(loss, DistillationLoss) for loss in losses):
            raise expected_error("losses to be a non-empty list of DistillationLoss objects", losses=losses)
        if cache is True:
            cache = TeacherCache()
        if cache is not None and not isinstance(cache, TeacherCache):
            raise expected_error("cache to be None, True or a TeacherCache", cache=cache)
        if cache is not None:
            check_backend()

        self.teacher = teacher
        self.teacher.trainable = False
        self.student = student
        self.teacher_layers = None if teacher_layers is None else list(teacher_layers)
        self.student_layers = None if student_layers is None else list(student_layers)
        self.cache = cache
        self._distillation_losses = tuple(_unique_names(losses))
        kinds = {loss.needs for loss in self._distillation_losses}
        self._recorders = {
            "teacher": FeatureRecorder(teacher, teacher_layers, attention="attention" in kinds, role="teacher"),
            "student": FeatureRecorder(student, student_layers, attention="attention" in kinds, role="student"),
        }
        self._pairs = tuple(self._resolve_pairs(loss) for loss in self._distillation_losses)
        self._teacher_keys, self._student_keys = self._feature_keys()
        self.projections = self._build_projections()
        self.loss_trackers = [keras.metrics.Mean(name=loss.name) for loss in self._distillation_losses]

    @property
    def distillation_losses(self):
        """The loss objects, in order."""
        return self._distillation_losses

    def _resolve_pairs(self, loss):
        if loss.needs in ("logits",):
            return ()
        what = type(loss).__name__
        for recorder in self._recorders.values():
            if loss.needs == "attention":
                recorder.require_attention(what)
            else:
                recorder.require_blocks(what)
        if loss.layers is None:
            return ()
        return loss.layers.resolve(self._recorders["teacher"].depth, self._recorders["student"].depth)

    def _feature_keys(self):
        teacher, student = set(), set()
        for loss, pairs in zip(self._distillation_losses, self._pairs):
            if loss.needs == "logits":
                student.add("logits")
                if not loss.uses_labels:
                    teacher.add("logits")
            elif loss.needs == "embedding":
                teacher.add("embedding")
                student.add("embedding")
            else:
                teacher.update(f"{loss.needs}/{t}" for t, _ in pairs)
                student.update(f"{loss.needs}/{s}" for _, s in pairs)
        return tuple(sorted(teacher)), tuple(sorted(student))

    def _build_projections(self):
        """A learned linear map for each student tensor narrower/wider than its teacher's."""
        teacher, student = self._recorders["teacher"], self._recorders["student"]
        widths = {}
        for loss, pairs in zip(self._distillation_losses, self._pairs):
            if loss.needs == "embedding":
                widths["embedding"] = (teacher.embedding_width(), student.embedding_width())
            elif loss.needs == "hidden":
                for t, s in pairs:
                    widths.setdefault(f"hidden/{s}", (teacher.hidden_width(t), student.hidden_width(s)))
        projections = {}
        for key, (teacher_width, student_width) in sorted(widths.items()):
            if teacher_width != student_width:
                name = "projection_" + key.replace("/", "_")
                projection = keras.layers.Dense(teacher_width, name=name)
                projection.build((None, student_width))
                projections[name] = projection
        return projections

    def _project(self, key, tensor):
        projection = self.projections.get("projection_" + key.replace("/", "_"))
        return tensor if projection is None else projection(tensor)

    def compile(self, optimizer="adam", loss=None, metrics=None, jit_compile="auto", **kwargs):
        """Configures training; the losses were set when the Distiller was made.

        Args:
            optimizer: Optimizer of the student (and projections).
            loss: Must be None.
            metrics: Metrics on the student's outputs.
            jit_compile: As in `keras.Model.compile`; "auto" is off with a
                teacher cache under TensorFlow (its hash lookups do not
                compile with XLA).
            **kwargs: Passed to `keras.Model.compile`.
        """
        if loss is not None:
            raise expected_error(
                "loss=None: the Distiller's losses are set when it is created (losses=, alpha=, ...)", loss=loss
            )
        if jit_compile == "auto" and self.cache is not None and keras.backend.backend() == "tensorflow":
            jit_compile = False
        super().compile(optimizer=optimizer, metrics=metrics, jit_compile=jit_compile, **kwargs)

    def call(self, inputs, training=None):
        """Runs the student, recording the tensors the losses need."""
        with self._recorders["student"].recording() as record:
            outputs = self.student(inputs, training=training)
        _step_records()[id(self)] = record
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Sum of the weighted losses (each also logged by name)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        record = _step_records().pop(id(self), None)
        student = _select(self._student_keys, _logits(y_pred, "student"), record)
        teacher = self._teacher_features(x)
        total = ops.zeros((), "float32")
        for loss, pairs, tracker in zip(self._distillation_losses, self._pairs, self.loss_trackers):
            inputs = LossInputs(teacher=teacher, student=student, labels=y, pairs=pairs, project=self._project)
            value = _weighted_mean(loss(inputs), sample_weight)
            tracker.update_state(value)
            total = total + loss.weight * value
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(loss, "float32") for loss in self.losses]))
        return _scale_for_replicas(total)

    def _teacher_forward(self, x):
        with self._recorders["teacher"].recording() as record:
            logits = self.teacher(x, training=False)
        features = _select(self._teacher_keys, _logits(logits, "teacher"), record)
        return {key: ops.cast(value, "float32") for key, value in features.items()}

    def _teacher_features(self, x):
        if self.cache is None or self.cache.size == 0:
            return self._teacher_forward(x)
        found, cached = self.cache.find(x)
        return ops.cond(found, lambda: cached, lambda: self._teacher_forward(x))

    def cache_teacher(self, x, batch_size=None, steps=None, verbose=1):
        """Runs the teacher once over `x` and stores its outputs in the cache.

        `fit` calls this on its training data; call it yourself for
        validation data. Examples already cached are not run again.

        Args:
            x: A `tf.data.Dataset` of ``x``, ``(x, y)`` or ``(x, y, w)``, or
                input arrays (or a dict of arrays).
            batch_size: Batch size for arrays (default 32).
            steps: Number of batches to take from an infinite dataset.
            verbose: 0 is silent, 1 shows a progress bar, 2 one line at the end.

        Returns:
            Number of examples added.
        """
        if self.cache is None:
            raise expected_error("a Distiller made with cache=True or a TeacherCache", cache=None)
        batches, total = input_batches(x, batch_size or _CACHE_BATCH_SIZE, steps)
        forward = teacher_pass(self._teacher_forward, self.teacher.variables)
        signature = teacher_signature(self.teacher, self._teacher_keys)
        started = time.perf_counter()
        added = self.cache.fill(forward, batches, signature, total=total, verbose=1 if verbose == 1 else 0)
        if verbose == 2:
            print(
                f"Teacher cache: {added:,} new examples in {time.perf_counter() - started:.1f} s "
                f"({self.cache.size:,} cached, {self.cache.nbytes / 1e6:.1f} MB)",
                flush=True,
            )
        if added:
            # Traced steps hold the previous lookup table.
            self.train_function = self.test_function = None
        return added

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", **kwargs):
        """`keras.Model.fit`, filling the teacher cache first when there is one."""
        if self.cache is not None and x is not None:
            data = x if y is None else (x, y)
            self.cache_teacher(
                data, batch_size, kwargs.get("steps_per_epoch"), verbose=1 if verbose == "auto" else verbose
            )
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, **kwargs)

    def get_config(self):
        config = {
            "name": self.name,
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "losses": [keras.saving.serialize_keras_object(loss) for loss in self._distillation_losses],
            "teacher_layers": self.teacher_layers,
            "student_layers": self.student_layers,
            "cache": None if self.cache is None else self.cache.get_config(),
        }
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"), custom_objects=custom_objects)
        student = keras.saving.deserialize_keras_object(config.pop("student"), custom_objects=custom_objects)
        losses = [keras.saving.deserialize_keras_object(loss) for loss in config.pop("losses")]
        cache = config.pop("cache")
        cache = None if cache is None else TeacherCache.from_config(cache)
        return cls(teacher, student, losses, cache=cache, **config)


def _step_records():
    if not hasattr(_STEP, "records"):
        _STEP.records = {}
    return _STEP.records


def _logits(outputs, role):
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    if isinstance(outputs, dict) and "logits" in outputs:
        outputs = outputs["logits"]
    if not hasattr(outputs, "shape") or isinstance(outputs, dict):
        raise expected_error(f"the {role} to return one tensor of logits", **{f"{role}_outputs": type(outputs)})
    return outputs


def _select(keys, logits, record):
    features = {}
    for key in keys:
        if key == "logits":
            features[key] = logits
        elif key == "embedding":
            features[key] = record.embedding
        else:
            kind, index = key.split("/")
            features[key] = getattr(record, kind)[int(index)]
    return features


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return ops.mean(values)
    weights = ops.reshape(ops.cast(sample_weight, values.dtype), (-1,))
    return ops.mean(values * weights)


def _scale_for_replicas(loss):
    """Divides by the number of replicas, as Keras' own losses do under a strategy."""
    if keras.backend.backend() != "tensorflow":
        return loss  # JAX shards one global batch: its loss is already the global mean.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


def _output_shape(model):
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1:
        return None
    return tuple(outputs[0].shape[1:])


def _check_output_shapes(teacher, student):
    teacher_shape, student_shape = _output_shape(teacher), _output_shape(student)
    if teacher_shape is not None and student_shape is not None and teacher_shape != student_shape:
        raise expected_error(
            "the student's output shape to match the teacher's",
            teacher_output_shape=(None, *teacher_shape),
            student_output_shape=(None, *student_shape),
        )


def _unique_names(losses):
    seen = {}
    for loss in losses:
        count = seen.get(loss.name, 0)
        seen[loss.name] = count + 1
        if count:
            loss.name = f"{loss.name}_{count}"
        yield loss
