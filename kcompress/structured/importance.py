"""How much each attention head and feed-forward unit matters: Taylor or magnitude scores."""

import contextlib
import dataclasses

import keras
import numpy as np
from keras import ops

from kcompress._errors import check_int, expected_error
from kcompress.structured import _data, _model, ffn, heads


@dataclasses.dataclass(frozen=True)
class Importance:
    """Scores of every head and feed-forward unit (higher: more important).

    Attributes:
        heads: One array per transformer layer, a score per head.
        ffn: One array per transformer layer, a score per intermediate unit.
        method: ``"taylor"`` or ``"magnitude"``.
        examples: Number of examples the scores were computed on (0 for magnitude).
    """

    heads: tuple
    ffn: tuple
    method: str
    examples: int = 0

    def __str__(self):
        lines = [f"{self.method} importance ({self.examples} examples)"]
        for i, (h, f) in enumerate(zip(self.heads, self.ffn)):
            lines.append(
                f"layer {i}: heads {np.array2string(np.asarray(h), precision=3)}, "
                f"ffn mean {float(np.mean(f)):.3g} (min {float(np.min(f)):.3g}, max {float(np.max(f)):.3g})"
            )
        return "\n".join(lines)


def _magnitude(model, architecture, **_):
    encoders = _model.encoders(model)
    return Importance(
        heads=tuple(heads.magnitude(_model.attention(e)) for e in encoders),
        ffn=tuple(ffn.magnitude(e) for e in encoders),
        method="magnitude",
    )


@contextlib.contextmanager
def _gated(model, gates):
    """Multiplies each head's context and each unit's activation by ``gates[...]`` while open.

    ``gates["heads"][i]`` and ``gates["ffn"][i]`` are per-example tensors of
    shape ``(batch, units)``, set before each forward pass: the gradient of
    the loss with respect to them is the first-order Taylor term.
    """
    patched = []
    for i, encoder in enumerate(_model.encoders(model)):
        attention = _model.attention(encoder)
        compute = attention._compute_attention

        def gated_attention(*args, _compute=compute, _i=i, **kwargs):
            output, scores = _compute(*args, **kwargs)
            gate = ops.cast(gates["heads"][_i], output.dtype)
            return output * gate[:, None, :, None], scores

        dense = encoder._feedforward_output_dense
        call = dense.call

        def gated_call(inputs, *args, _call=call, _i=i, **kwargs):
            gate = ops.cast(gates["ffn"][_i], inputs.dtype)
            return _call(inputs * gate[:, None, :], *args, **kwargs)

        object.__setattr__(attention, "_compute_attention", gated_attention)
        object.__setattr__(dense, "call", gated_call)
        patched += [(attention, "_compute_attention"), (dense, "call")]
    try:
        yield
    finally:
        for owner, name in patched:
            object.__delattr__(owner, name)


def _default_loss(model):
    if not _model.is_classifier(model):
        raise expected_error(
            "a loss=(y_true, y_pred) -> scalar for importance='taylor' on a backbone (or importance='magnitude')",
            loss=None,
        )
    from_logits = keras.activations.get(model.activation) is not keras.activations.softmax
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction="sum")


def _tensorflow_gradient(fn):
    import tensorflow as tf

    def gradient(wrt, *args):
        with tf.GradientTape() as tape:
            tape.watch(wrt)
            value = fn(wrt, *args)
        return tape.gradient(value, wrt)

    return gradient


def _jax_gradient(fn):
    import jax

    return jax.jit(jax.grad(fn))


# Per backend: ``fn -> (wrt, *args) -> gradient of the scalar fn(wrt, *args) with respect to the structure wrt``.
GRADIENTS = {"tensorflow": _tensorflow_gradient, "jax": _jax_gradient}


def _gradient_of(fn):
    backend = keras.backend.backend()
    if backend not in GRADIENTS:
        raise expected_error(f"a Keras backend among {tuple(GRADIENTS)} for Taylor importance", backend=backend)
    return GRADIENTS[backend](fn)


def _taylor(model, architecture, data=None, batches=4, batch_size=32, loss=None, verbose=1):
    batches = check_int("batches", batches, minimum=1)
    found = _data.batches(data, "importance_data", batch_size=batch_size, count=batches)
    loss = loss if loss is not None else _default_loss(model)
    sums = {
        "heads": [np.zeros(n) for n in architecture.num_heads],
        "ffn": [np.zeros(n) for n in architecture.intermediate_dim],
    }
    gates = {}

    def gated_loss(opened, trainable, rest, x, y):
        gates.update(opened)
        return loss(y, model.stateless_call(trainable, rest, x, training=False)[0])

    gradient = _gradient_of(gated_loss)
    examples = 0
    progress = keras.utils.Progbar(len(found), verbose=verbose, unit_name="batch")
    with _gated(model, gates):
        for step, (x, y) in enumerate(found):
            rows = len(y)
            ones = {
                kind: [ops.ones((rows, n)) for n in sizes]
                for kind, sizes in (("heads", architecture.num_heads), ("ffn", architecture.intermediate_dim))
            }
            trainable = [v.value for v in model.trainable_variables]
            rest = [v.value for v in model.non_trainable_variables]
            grads = gradient(ones, trainable, rest, x, y)
            for kind in ("heads", "ffn"):
                for i, grad in enumerate(grads[kind]):
                    if grad is not None:
                        sums[kind][i] += np.abs(ops.convert_to_numpy(grad)).sum(axis=0)
            examples += rows
            progress.update(step + 1)
    return Importance(
        heads=tuple(s / examples for s in sums["heads"]),
        ffn=tuple(s / examples for s in sums["ffn"]),
        method="taylor",
        examples=examples,
    )


METHODS = {"taylor": _taylor, "magnitude": _magnitude}


def importance_scores(model, data=None, method="taylor", batches=4, batch_size=32, loss=None, verbose=1):
    """Scores every attention head and feed-forward unit of a BERT-family model.

    - ``"taylor"``: first-order Taylor importance (Molchanov et al. 2017;
      Michel et al. 2019 for heads): for each example, the gradient of the
      loss with respect to a gate on the head's context (or the unit's
      activation), i.e. ``sum(grad * activation)`` over tokens, in absolute
      value, averaged over `batches` batches of `data`.
    - ``"magnitude"``: the L2 norm of the weights the head or unit owns
      (query, key, value and output kernel slices; intermediate column and
      output row). Needs no data.

    Args:
        model: A built `BertTextClassifier` or `BertBackbone`.
        data: For ``"taylor"``: a batched `tf.data.Dataset` of ``(x, y)`` or
            ``(x, y)`` arrays, `x` being the preprocessed inputs (a dict of
            token_ids, segment_ids, padding_mask).
        method: ``"taylor"`` or ``"magnitude"``.
        batches: Batches of `data` to use; fewer available is an error.
        batch_size: Rows per batch when `data` is arrays.
        loss: ``(y_true, y_pred) -> scalar``; default: sparse categorical
            cross-entropy (summed) for a classifier. Required for a backbone.
        verbose: 1 shows a progress bar.

    Returns:
        An `Importance`.

    Example:

    >>> import keras_hub, numpy as np
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=6)
    >>> model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    >>> x = {"token_ids": np.ones((8, 6), "int32"), "segment_ids": np.zeros((8, 6), "int32"),
    ...      "padding_mask": np.ones((8, 6), "int32")}
    >>> scores = importance_scores(model, (x, np.zeros(8)), batches=2, batch_size=4, verbose=0)
    >>> [s.shape for s in scores.heads], scores.ffn[0].shape, scores.examples
    ([(2,), (2,)], (16,), 8)
    """
    _method(method)  # Checked before the model, as the arguments come.
    return score_with(model, _model.architecture(model), data, method, batches, batch_size, loss, verbose)


def score_with(model, architecture, data=None, method="taylor", batches=4, batch_size=32, loss=None, verbose=1):
    """`importance_scores` of a model whose `Architecture` the caller has read."""
    return _method(method)(
        model, architecture, data=data, batches=batches, batch_size=batch_size, loss=loss, verbose=verbose
    )


def _method(name):
    if name not in METHODS:
        raise expected_error(f"method in {tuple(METHODS)}", method=name)
    return METHODS[name]
