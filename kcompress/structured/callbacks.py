"""`IterativeStructuredPruning`: prune a little, fine-tune, repeat, inside `fit`."""

import keras
import numpy as np
from keras import ops

from kcompress._errors import check_int, expected_error
from kcompress.structured import _model
from kcompress.structured.importance import Importance, score_with
from kcompress.structured.masking import masks
from kcompress.structured.plan import Plan, check_targets, top_units


def _step_counts(final, totals, fraction):
    """Per-layer counts to keep after `fraction` of the way from `totals` to `final`."""
    return [total - int(np.floor((total - target) * fraction + 0.5)) for total, target in zip(totals, final)]


class IterativeStructuredPruning(keras.callbacks.Callback):
    """Removes heads and FFN units in `steps` equal steps during `fit`, fine-tuning in between.

    At the start of every `frequency`-th epoch from `begin_epoch`, until
    `steps` steps are done, the callback scores the units of the model
    being trained (on `importance_data`), and silences the lowest-scoring
    ones, so that after step ``k`` a fraction ``k / steps`` of the way to
    the target is removed. Silenced units (zero output weights, exactly as
    in `mask_transformer`) are kept silent after every batch and never come
    back. After `fit`, `shrink(model, callback.plan)` builds the physically
    smaller model, with the same outputs.

    Args:
        heads: Final target for heads: a fraction in [0, 1) to remove from
            every layer, or a list of per-layer counts to keep.
        ffn: The same for feed-forward units.
        importance_data: Preprocessed ``(x, y)`` data (arrays or dataset)
            for Taylor scores.
        importance: ``"taylor"`` or ``"magnitude"``.
        steps: Number of pruning steps.
        frequency: Epochs between steps.
        begin_epoch: Epoch of the first step.
        batches: Batches of `importance_data` per scoring.
        batch_size: Rows per batch when `importance_data` is arrays.

    Example:

    >>> import keras_hub, numpy as np
    >>> from kcompress import structured
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=4,
    ...     hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    >>> model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    >>> x = {"token_ids": np.ones((16, 8), "int32"), "segment_ids": np.zeros((16, 8), "int32"),
    ...      "padding_mask": np.ones((16, 8), "int32")}
    >>> callback = IterativeStructuredPruning(heads=0.5, ffn=0.5, importance="magnitude", steps=2)
    >>> _ = model.fit(x, np.zeros(16), epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    >>> callback.plan.num_heads, callback.plan.intermediate_dim
    ((2, 2), (16, 16))
    >>> structured.shrink(model, callback.plan).backbone.num_heads
    [2, 2]
    """

    def __init__(
        self,
        heads=0.0,
        ffn=0.0,
        importance_data=None,
        importance="taylor",
        steps=3,
        frequency=1,
        begin_epoch=0,
        batches=4,
        batch_size=32,
    ):
        super().__init__()
        if importance == "taylor" and importance_data is None:
            raise expected_error(
                "importance_data for importance='taylor' (or importance='magnitude')", importance_data=None
            )
        self.heads = heads
        self.ffn = ffn
        self.importance_data = importance_data
        self.importance = importance
        self.steps = check_int("steps", steps, minimum=1)
        self.frequency = check_int("frequency", frequency, minimum=1)
        self.begin_epoch = check_int("begin_epoch", begin_epoch, minimum=0)
        self.batches = batches
        self.batch_size = batch_size
        self.plan = None
        self._done = 0
        self._masks = []

    def on_train_begin(self, logs=None):
        self._architecture = _model.architecture(self.model)
        _, self._final_heads, self._final_ffn = check_targets(self._architecture, self.heads, self.ffn, None)
        self.plan = Plan.full(self._architecture)
        self._done = 0
        self._masks = []

    def _scores(self):
        scores = score_with(
            self.model,
            self._architecture,
            self.importance_data,
            method=self.importance,
            batches=self.batches,
            batch_size=self.batch_size,
            verbose=0,
        )

        def only_kept(values, kept):
            values = np.array(values, dtype=np.float64)
            dropped = np.setdiff1d(np.arange(len(values)), list(kept))
            values[dropped] = -np.inf
            return values

        return Importance(
            heads=tuple(only_kept(s, k) for s, k in zip(scores.heads, self.plan.heads)),
            ffn=tuple(only_kept(s, k) for s, k in zip(scores.ffn, self.plan.ffn)),
            method=scores.method,
            examples=scores.examples,
        )

    def on_epoch_begin(self, epoch, logs=None):
        due = epoch >= self.begin_epoch and (epoch - self.begin_epoch) % self.frequency == 0
        if not due or self._done >= self.steps:
            return
        self._done += 1
        fraction = self._done / self.steps
        head_counts = _step_counts(self._final_heads, self._architecture.num_heads, fraction)
        ffn_counts = _step_counts(self._final_ffn, self._architecture.intermediate_dim, fraction)
        scores = self._scores()
        self.plan = Plan(
            layers=self.plan.layers,
            heads=tuple(top_units(s, n) for s, n in zip(scores.heads, head_counts)),
            ffn=tuple(top_units(s, n) for s, n in zip(scores.ffn, ffn_counts)),
        )
        self._masks = [
            (variable, ops.convert_to_tensor(mask))
            for variable, mask in masks(self.model, self._architecture, self.plan)
        ]
        self._apply()

    def _apply(self):
        for variable, mask in self._masks:
            variable.assign(variable.value * ops.cast(mask, variable.dtype))

    def on_train_batch_end(self, batch, logs=None):
        # Reading `self.model` first makes the JAX trainer write the step's values into the variables
        # (it keeps them apart during an epoch); it reads them back before the next step.
        if self._masks and self.model is not None:
            self._apply()
