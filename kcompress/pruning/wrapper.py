"""`PruneLowMagnitude`: a layer wrapper that trains its layer under a mask."""

import keras
from keras import ops

from kcompress._errors import expected_error
from kcompress._stateless import call_with_values
from kcompress.pruning import masks, prunable, schedules


@keras.saving.register_keras_serializable(package="kcompress")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Prunes the kernels of `layer` by magnitude while it trains.

    The wrapper keeps one 0/1 mask per pruned weight and a pruning step. In
    `fit`, on the steps the schedule picks, it recomputes each mask from the
    magnitudes of the still-unpruned weights. The wrapped layer always runs
    with ``weight * mask`` (through a `keras.StatelessScope`), so pruned
    weights neither act nor receive gradient, and the stored weights are
    left untouched until `strip_pruning`. Masks only grow.

    The step advances by one on every training call, inside the compiled
    step (no per-batch Python work); `fit` must be given the
    `UpdatePruningStep` callback, which starts it and checks the setup. A
    layer called several times per batch (weight sharing) counts each call.

    Args:
        layer: The layer to prune: one of the families in
            `kcompress.pruning.prunable.PRUNABLE` (Dense, EinsumDense, Conv,
            SeparableConv, DepthwiseConv, Embedding).
        sparsity_schedule: A `PruningSchedule` or a callable
            ``step -> sparsity``.
        pattern: None (unstructured), `NM(n, m)` or `Block(shape)`.
        weight_names: Names of the weight variables to prune; by default
            the family's kernels.
        **kwargs: Base layer arguments (`name`, ...).

    Example:

    >>> import numpy as np
    >>> from kcompress import pruning
    >>> layer = pruning.PruneLowMagnitude(
    ...     keras.layers.Dense(4), pruning.ConstantSparsity(0.5, frequency=1))
    >>> model = keras.Sequential([keras.Input((8,)), layer])
    >>> model.compile("sgd", "mse")
    >>> _ = model.fit(np.ones((4, 8)), np.ones((4, 4)), verbose=0,
    ...               callbacks=[pruning.UpdatePruningStep()])
    >>> float(np.mean(layer.masks[0].numpy()))
    0.5
    """

    def __init__(
        self,
        layer,
        sparsity_schedule=None,
        pattern=None,
        weight_names=None,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise expected_error("a keras.layers.Layer to prune", layer=layer)
        entry = prunable.lookup(layer)
        if entry is None:
            raise expected_error(
                f"a layer kcompress can prune ({prunable.supported_names()})",
                layer=f"{layer.name} ({type(layer).__name__})",
            )
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        if sparsity_schedule is None:
            sparsity_schedule = schedules.ConstantSparsity(0.5)
        self.sparsity_schedule = schedules.get(sparsity_schedule)
        self.pattern = masks.get(pattern)
        known = tuple(entry.input_axes)
        weight_names = tuple(weight_names) if weight_names else known
        unknown = [n for n in weight_names if n not in known]
        if unknown:
            raise expected_error(
                f"weight_names of {type(layer).__name__} among {known}",
                weight_names=weight_names,
            )
        self.weight_names = weight_names
        self._entry = entry
        # Set by UpdatePruningStep.on_train_begin; checked when fit traces.
        self._step_callback_attached = False
        # Set when a training call is traced; UpdatePruningStep checks it.
        self._traced_for_training = False

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        axes = prunable.input_axes(self.layer, self._entry)
        own = {v.name: v for v in self.layer._trainable_variables}
        own.update({v.name: v for v in self.layer._non_trainable_variables})
        self._axes = []
        self.masks = []
        for name in self.weight_names:
            variable = own.get(name)
            if variable is None:
                raise expected_error(
                    f"layer '{self.layer.name}' to have a weight named '{name}'",
                    weight_names=self.weight_names,
                )
            axis = axes[name] % len(variable.shape)
            self.pattern.validate(variable.shape, axis, variable.path)
            self._axes.append(axis)
            self.masks.append(
                self.add_weight(
                    name=f"{name}_mask",
                    shape=variable.shape,
                    initializer="ones",
                    trainable=False,
                    aggregation="only_first_replica",
                )
            )
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            # JAX has no int64 unless x64 is switched on.
            dtype="int64" if keras.backend.backend() == "tensorflow" else "int32",
            initializer=keras.initializers.Constant(-1),
            trainable=False,
            aggregation="only_first_replica",
        )
        self.built = True

    @property
    def pruned_variables(self):
        """The wrapped layer's variables this wrapper prunes, in order.

        Looked up on each access rather than stored, so the wrapper does not
        track (and save) the layer's variables as its own.
        """
        own = {v.name: v for v in self.layer._trainable_variables}
        own.update({v.name: v for v in self.layer._non_trainable_variables})
        return [own[name] for name in self.weight_names]

    @property
    def pruned_weights(self):
        """List of ``(variable, mask)`` pairs this wrapper prunes."""
        return list(zip(self.pruned_variables, self.masks))

    def masked_values(self):
        """The effective (masked) value of each pruned weight."""
        return [v * ops.cast(m, v.dtype) for v, m in self.pruned_weights]

    def update_masks(self):
        """Recomputes the masks if the schedule prunes at the current step."""
        step = self.pruning_step.value
        should_prune = ops.logical_and(self.sparsity_schedule.should_prune(step), step >= 0)

        def new_mask(variable, axis, mask):
            # The sparsity is computed in the branch that prunes only: most steps skip its ops.
            sparsity = self.sparsity_schedule.sparsity(step)
            return self.pattern.compute_mask(
                ops.cast(variable.value, "float32"), sparsity, input_axis=axis, previous_mask=mask.value
            )

        pruned = list(zip(self.pruned_variables, self._axes, self.masks))
        if not _assigns_in_branches():
            # A replica may not assign a mirrored variable inside a branch (TF's merge_call), and JAX's
            # branches are pure functions; so each mask is assigned every step, with itself on the
            # steps that do not prune.
            masks = ops.cond(
                should_prune,
                lambda: [new_mask(v, a, m) for v, a, m in pruned],
                lambda: [m.value for _, _, m in pruned],
            )
            for (_, _, mask), value in zip(pruned, masks):
                mask.assign(value)
            return

        def recompute():
            for variable, axis, mask in pruned:
                mask.assign(new_mask(variable, axis, mask))
            return ops.convert_to_tensor(True)

        # Assigned inside the branch: on the steps that do not prune (99 of 100 by default) no mask
        # is copied onto itself. That copy was most of what pruning added to a training step.
        ops.cond(should_prune, recompute, lambda: ops.convert_to_tensor(False))

    def call(self, inputs, *args, training=None, **kwargs):
        if training:
            if not self._step_callback_attached:
                raise ValueError(
                    "Expected `kcompress.pruning.UpdatePruningStep()` in the "
                    "callbacks of `fit` when training a model with pruning "
                    f"wrappers. Received: a training call of '{self.name}' "
                    "without it. Use model.fit(..., "
                    "callbacks=[kcompress.pruning.UpdatePruningStep()])."
                )
            self._traced_for_training = True
            self.update_masks()
            self.pruning_step.assign_add(1)
        mapping = list(zip(self.pruned_variables, self.masked_values()))
        return call_with_values(
            lambda: self.layer(inputs, *args, training=training, **kwargs), mapping, self.layer.variables
        )

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sparsity_schedule": keras.saving.serialize_keras_object(
                    self.sparsity_schedule
                ),
                "pattern": keras.saving.serialize_keras_object(self.pattern),
                "weight_names": list(self.weight_names),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(
            config["layer"], custom_objects=custom_objects
        )
        for key in ("sparsity_schedule", "pattern"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def pruning_wrappers(model):
    """All `PruneLowMagnitude` layers in `model`, at any depth.

    Example:

    >>> from kcompress import pruning
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> len(pruning_wrappers(pruning.prune_low_magnitude(model)))
    1
    """
    return [layer for layer in model._flatten_layers() if isinstance(layer, PruneLowMagnitude)]


def _assigns_in_branches():
    """Whether a mask may be assigned inside a branch of `ops.cond`.

    Only in TensorFlow outside a `tf.distribute` replica context: JAX's
    branches are pure functions, and a replica may not assign a mirrored
    variable in a branch (TF's merge_call).
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy()
