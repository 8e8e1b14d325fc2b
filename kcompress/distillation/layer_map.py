"""Which teacher layer each student layer learns from."""

import dataclasses
import numbers

import keras

from kcompress._errors import expected_error

STRATEGIES = ("uniform", "last")


@keras.saving.register_keras_serializable(package="kcompress")
@dataclasses.dataclass(frozen=True)
class LayerMap:
    """Pairs teacher layers with student layers when their depths differ.

    Layers are counted from 0 (the first transformer block). Three kinds:

    * ``"uniform"``: student layer ``j`` of ``S`` learns from teacher layer
      ``(j + 1) * T // S - 1`` of ``T`` (TinyBERT's mapping: every
      ``T / S``-th layer, ending with the last).
    * ``"last"``: the student's ``S`` layers learn from the teacher's last
      ``S`` layers, in order.
    * explicit ``pairs``: ``((teacher_layer, student_layer), ...)``.

    Args:
        strategy: ``"uniform"`` or ``"last"``; ignored when `pairs` is given.
        pairs: Optional explicit ``(teacher_layer, student_layer)`` pairs.

    Example:

    >>> LayerMap("uniform").resolve(teacher_depth=6, student_depth=2)
    ((2, 0), (5, 1))
    >>> LayerMap("last").resolve(teacher_depth=6, student_depth=2)
    ((4, 0), (5, 1))
    >>> LayerMap(pairs=[(0, 0), (5, 1)]).resolve(6, 2)
    ((0, 0), (5, 1))
    """

    strategy: str = "uniform"
    pairs: tuple = None

    def __post_init__(self):
        if self.pairs is None:
            if self.strategy not in STRATEGIES:
                raise expected_error(f"strategy to be one of {STRATEGIES} (or explicit pairs)", strategy=self.strategy)
            return
        pairs = tuple(tuple(pair) for pair in self.pairs) if _is_sequence(self.pairs) else None
        if not pairs or any(len(pair) != 2 or not all(_is_index(i) for i in pair) for pair in pairs):
            raise expected_error(
                "pairs to be a non-empty list of (teacher_layer, student_layer) index pairs", pairs=self.pairs
            )
        object.__setattr__(self, "pairs", tuple((int(t), int(s)) for t, s in pairs))
        object.__setattr__(self, "strategy", "pairs")

    @classmethod
    def of(cls, value):
        """Returns `value` as a `LayerMap`: a map, a strategy name or pairs.

        Example:

        >>> LayerMap.of("last").strategy
        'last'
        """
        if isinstance(value, LayerMap):
            return value
        if isinstance(value, str):
            return cls(value)
        return cls(pairs=value)

    def resolve(self, teacher_depth, student_depth):
        """Returns the ``(teacher_layer, student_layer)`` pairs for two depths.

        Raises:
            ValueError: If a pair points past either model's depth, or the
                student is deeper than the teacher for ``"last"``.
        """
        if self.pairs is not None:
            for teacher_layer, student_layer in self.pairs:
                if not 0 <= teacher_layer < teacher_depth:
                    raise expected_error(
                        f"teacher layers in [0, {teacher_depth}) (the teacher has {teacher_depth})",
                        pair=(teacher_layer, student_layer),
                    )
                if not 0 <= student_layer < student_depth:
                    raise expected_error(
                        f"student layers in [0, {student_depth}) (the student has {student_depth})",
                        pair=(teacher_layer, student_layer),
                    )
            return self.pairs
        if student_depth > teacher_depth:
            raise expected_error(
                f"a student no deeper than the teacher for strategy={self.strategy!r}; give explicit pairs instead",
                teacher_depth=teacher_depth,
                student_depth=student_depth,
            )
        if self.strategy == "last":
            offset = teacher_depth - student_depth
            return tuple((offset + j, j) for j in range(student_depth))
        return tuple(((j + 1) * teacher_depth // student_depth - 1, j) for j in range(student_depth))

    def get_config(self):
        if self.pairs is not None:
            return {"pairs": [list(pair) for pair in self.pairs]}
        return {"strategy": self.strategy}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _is_sequence(value):
    return isinstance(value, (list, tuple))


def _is_index(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
