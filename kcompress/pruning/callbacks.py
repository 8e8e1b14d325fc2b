"""Callbacks that drive pruning inside `model.fit`."""

import os

import keras
import numpy as np

from kcompress.pruning.wrapper import pruning_wrappers


@keras.saving.register_keras_serializable(package="kcompress")
class UpdatePruningStep(keras.callbacks.Callback):
    """Starts and checks the pruning step of every wrapper in `fit`.

    Required in `fit` for any model with `PruneLowMagnitude` layers (as in
    tfmot). Batch ``i`` of a fresh model runs at step ``i``; a model loaded
    from `.keras` resumes at the step it was saved at. The step itself
    advances inside the compiled train step, so the callback costs nothing
    per batch. It raises a clear error when the model's `call` does not
    pass `training` on to its layers (pruning would silently not happen).

    Example:

    >>> import numpy as np
    >>> from kcompress import pruning
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> pruned = pruning.prune_low_magnitude(
    ...     model, sparsity_schedule=pruning.ConstantSparsity(0.5, frequency=1))
    >>> pruned.compile("sgd", "mse")
    >>> _ = pruned.fit(np.ones((8, 8)), np.ones((8, 4)), batch_size=4,
    ...                verbose=0, callbacks=[pruning.UpdatePruningStep()])
    >>> int(pruned.layers[-1].pruning_step.numpy())  # two batches ran
    2
    """

    def __init__(self):
        super().__init__()
        self._wrappers = []
        self._checked = False

    def on_train_begin(self, logs=None):
        self._wrappers = pruning_wrappers(self.model)
        if not self._wrappers:
            raise ValueError(
                "Expected a model with pruning wrappers (made by "
                "kcompress.pruning.prune_low_magnitude) when using "
                f"UpdatePruningStep. Received: model '{self.model.name}' "
                "with none."
            )
        for wrapper in self._wrappers:
            wrapper._step_callback_attached = True
            if int(wrapper.pruning_step.numpy()) < 0:
                wrapper.pruning_step.assign(0)
        self._checked = False

    def on_train_batch_end(self, batch, logs=None):
        if self._checked:
            return
        self._checked = True
        if not any(w._traced_for_training for w in self._wrappers):
            raise ValueError(
                "Expected the pruning wrappers to be called with "
                "training=True inside fit. Received: model "
                f"'{self.model.name}' whose call() does not pass `training` "
                "to its layers; add a `training=None` argument to call() and "
                "pass it on, as Keras requires for Dropout and BatchNorm too."
            )

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kcompress")
class PruningSummaries(keras.callbacks.Callback):
    """Writes each pruned weight's sparsity to TensorBoard logs.

    Logs ``sparsity/<weight path>`` per pruned weight and
    ``sparsity/target`` (the schedule's value) every epoch, or every
    `update_freq` batches when it is an integer.

    Args:
        log_dir: Directory of the TensorBoard event files.
        update_freq: ``"epoch"`` or a number of batches.

    Example:

    >>> import numpy as np, tempfile
    >>> from kcompress import pruning
    >>> model = pruning.prune_low_magnitude(
    ...     keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]))
    >>> model.compile("sgd", "mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> _ = model.fit(np.ones((8, 8)), np.ones((8, 4)), verbose=0, callbacks=[
    ...     pruning.UpdatePruningStep(), pruning.PruningSummaries(log_dir)])
    >>> len(os.listdir(log_dir)) > 0
    True
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if update_freq != "epoch" and (
            isinstance(update_freq, bool)
            or not isinstance(update_freq, int)
            or update_freq < 1
        ):
            raise ValueError(
                "Expected update_freq to be 'epoch' or a positive integer. "
                f"Received: update_freq={update_freq!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self._writer = None
        self._step = 0

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        os.makedirs(self.log_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(self.log_dir)
        self._step = 0

    def _write(self, step):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        # TensorBoard's scalar format, written with core TF so that the
        # tensorboard package is not needed to log.
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        ).SerializeToString()
        values = {}
        for wrapper in pruning_wrappers(self.model):
            for variable, mask in wrapper.pruned_weights:
                values[f"sparsity/{variable.path}"] = 1.0 - float(np.mean(mask.numpy()))
            _, target = wrapper.sparsity_schedule(wrapper.pruning_step.numpy())
            values["sparsity/target"] = float(target)
        with self._writer.as_default():
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                                 metadata=metadata)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.update_freq != "epoch" and self._step % self.update_freq == 0:
            self._write(self._step)

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()

    def get_config(self):
        return {"log_dir": self.log_dir, "update_freq": self.update_freq}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
