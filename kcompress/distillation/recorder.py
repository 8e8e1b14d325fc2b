"""Record a model's embedding output, hidden states and attention maps.

Keras has no forward hooks, and keras-hub's `BertBackbone` only returns its
last hidden state. `FeatureRecorder` reaches the tensors in between without
editing either: while a forward pass runs inside `recording()`, each
transformer block's ``call`` and each attention layer's score computation are
temporarily replaced, on that one instance, by a version that also writes its
tensors into a per-thread record. Outside `recording()` the model is exactly
as it was (nothing is added to its config, weights or saved file).
"""

import contextlib
import dataclasses
import inspect
import threading

import keras

from kcompress._errors import expected_error
from kcompress.quantization.attention import QuantizeAttention

# Where each attention layer computes its probabilities, by class, most
# specific first: kcompress' QAT wrapper runs its own attention step.
ATTENTION_METHODS = (
    (QuantizeAttention, "_attend"),
    (keras.layers.MultiHeadAttention, "_compute_attention"),
)

_THREAD = threading.local()


@dataclasses.dataclass
class Record:
    """The tensors of one forward pass.

    Attributes:
        embedding: Input of the first block (the embedding output).
        hidden: Output of each block, by block index.
        attention: Attention probabilities ``(batch, heads, query, key)`` of
            each block, by block index.
    """

    embedding: object = None
    hidden: dict = dataclasses.field(default_factory=dict)
    attention: dict = dataclasses.field(default_factory=dict)


def _keras_hub_blocks(model):
    backbone = getattr(model, "backbone", model)
    return tuple(getattr(backbone, "transformer_layers", None) or ())


def _attention_blocks(model):
    """Outermost layers that hold a MultiHeadAttention, in call order."""
    blocks = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, keras.Model):
            blocks.extend(_keras_hub_blocks(layer) or _attention_blocks(layer))
        elif _attention_of(layer) is not None:
            blocks.append(layer)
    return tuple(blocks)


# How the blocks of a model are found when no layer names are given.
BLOCK_FINDERS = (_keras_hub_blocks, _attention_blocks)


def _attention_of(layer):
    """Returns ``(object, method name)`` computing the layer's attention, or None."""
    sublayers = list(layer._flatten_layers(include_self=True))
    for cls, method in ATTENTION_METHODS:
        for sublayer in sublayers:
            if isinstance(sublayer, cls):
                return sublayer, method
    return None


def _named_layers(model, names, role):
    by_name = {}
    for layer in model._flatten_layers(include_self=False):
        by_name.setdefault(layer.name, layer)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise expected_error(
            f"{role}_layers to name layers of the {role}",
            **{f"{role}_layers": list(names), "missing": missing},
        )
    return tuple(by_name[name] for name in names)


def _first_tensor(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _records():
    if not hasattr(_THREAD, "records"):
        _THREAD.records = {}
    return _THREAD.records


class FeatureRecorder:
    """Finds a model's transformer blocks and records their tensors.

    Blocks are, in order of preference: the layers named in `layers`; a
    keras-hub backbone's ``transformer_layers`` (the model itself or its
    ``backbone``); the outermost layers holding a `MultiHeadAttention`.

    Args:
        model: A Keras model (functional, Sequential, subclassed or keras-hub).
        layers: Optional list of layer names to use as the blocks.
        attention: Whether to record attention probabilities too.
        role: ``"teacher"`` or ``"student"``, for error messages.

    Example:

    >>> import keras_hub
    >>> import numpy as np
    >>> backbone = keras_hub.models.BertBackbone(
    ...     vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8,
    ...     intermediate_dim=16, max_sequence_length=8)
    >>> recorder = FeatureRecorder(backbone)
    >>> x = {"token_ids": np.ones((1, 8), "int32"),
    ...      "segment_ids": np.zeros((1, 8), "int32"),
    ...      "padding_mask": np.ones((1, 8), "int32")}
    >>> with recorder.recording() as record:
    ...     _ = backbone(x)
    >>> tuple(record.hidden[1].shape), tuple(record.attention[0].shape)
    ((1, 8, 8), (1, 2, 8, 8))
    """

    def __init__(self, model, layers=None, *, attention=True, role="student"):
        self.model = model
        self.role = role
        if layers is not None:
            self.blocks = _named_layers(model, layers, role)
        else:
            self.blocks = ()
            for find in BLOCK_FINDERS:
                self.blocks = find(model)
                if self.blocks:
                    break
        self._attention = attention
        self._lock = threading.Lock()
        self._users = 0
        self._saved = []

    @property
    def depth(self):
        """Number of blocks."""
        return len(self.blocks)

    def require_blocks(self, what):
        """Raises a clear error unless the model has blocks for `what`."""
        if not self.blocks:
            raise expected_error(
                f"the {self.role} to expose transformer blocks for {what} (a keras-hub backbone or task, "
                f"layers holding a MultiHeadAttention, or {self.role}_layers=[names])",
                **{self.role: getattr(self.model, "name", self.model)},
            )

    def require_attention(self, what):
        """Raises a clear error unless every block holds an attention layer."""
        self.require_blocks(what)
        for block in self.blocks:
            if _attention_of(block) is None:
                raise expected_error(
                    f"each {self.role} block to hold a MultiHeadAttention for {what}",
                    **{f"{self.role}_block": block.name},
                )

    def hidden_width(self, index):
        """Last dimension of block `index`'s output."""
        return _width(self.blocks[index], "output", self.role)

    def embedding_width(self):
        """Last dimension of the first block's input."""
        return _width(self.blocks[0], "input", self.role)

    @contextlib.contextmanager
    def recording(self):
        """Context in which forward passes of the model fill a `Record`."""
        self._install()
        records = _records()
        record = Record()
        previous = records.get(id(self))
        records[id(self)] = record
        try:
            yield record
        finally:
            if previous is None:
                records.pop(id(self), None)
            else:
                records[id(self)] = previous
            self._uninstall()

    def _current(self):
        return _records().get(id(self))

    def _install(self):
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            for index, block in enumerate(self.blocks):
                self._patch(block, "call", self._block_call(index, block.call))
                target = _attention_of(block) if self._attention else None
                if target is not None:
                    owner, method = target
                    self._patch(owner, method, self._attention_call(index, getattr(owner, method)))

    def _uninstall(self):
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            for owner, name, had, previous in reversed(self._saved):
                if had:
                    object.__setattr__(owner, name, previous)
                else:
                    object.__delattr__(owner, name)
            self._saved = []

    def _patch(self, owner, name, function):
        had = name in vars(owner)
        self._saved.append((owner, name, had, vars(owner).get(name)))
        object.__setattr__(owner, name, function)

    def _block_call(self, index, original):
        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            record = self._current()
            if record is not None:
                if index == 0:
                    record.embedding = args[0] if args else kwargs.get("inputs")
                record.hidden[index] = _first_tensor(outputs)
            return outputs

        return call

    def _attention_call(self, index, original):
        signature = inspect.signature(original)
        forces_scores = "return_attention_scores" in signature.parameters

        def attend(*args, **kwargs):
            if forces_scores and self._current() is not None:
                bound = signature.bind(*args, **kwargs)
                bound.arguments["return_attention_scores"] = True
                args, kwargs = bound.args, bound.kwargs
            outputs = original(*args, **kwargs)
            record = self._current()
            if record is not None:
                record.attention[index] = outputs[1]
            return outputs

        return attend


def _width(layer, which, role):
    try:
        return int(_first_tensor(getattr(layer, which)).shape[-1])
    except (AttributeError, ValueError, TypeError) as error:
        raise expected_error(
            f"the {role}'s block {layer.name!r} to have been called in a functional model "
            "(its width is read from its symbolic output)",
            **{role: layer.name},
        ) from error
