"""Sparsity schedules: pure functions of the training step.

A schedule answers two questions for a step: is this a step on which masks are
recomputed, and what sparsity should they reach. The definitions and numbers
are those of tensorflow-model-optimization (tfmot), so recipes carry over.
Schedules hold no Keras state and work on Python ints as well as tensors.
"""

import keras
from keras import ops

from kcompress._errors import check_fraction, check_int, expected_error


class PruningSchedule:
    """Base class: ``schedule(step) -> (should_prune, sparsity)``.

    Subclasses implement `sparsity(step)` and set `begin_step`, `end_step`
    (``-1`` for "never ends") and `frequency`.
    """

    begin_step = 0
    end_step = -1
    frequency = 1

    def sparsity(self, step):
        raise NotImplementedError

    def should_prune(self, step):
        """True on steps where masks are recomputed (tfmot's rule)."""
        step = ops.cast(step, "int32")
        in_range = ops.logical_and(
            ops.greater_equal(step, self.begin_step),
            ops.logical_or(
                ops.less_equal(step, self.end_step), self.end_step < 0
            ),
        )
        on_turn = ops.equal(
            ops.mod(step - self.begin_step, self.frequency), 0
        )
        return ops.logical_and(in_range, on_turn)

    def __call__(self, step):
        return self.should_prune(step), self.sparsity(step)

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_steps(begin_step, end_step, frequency, allow_open_end):
    """Returns ``(begin_step, end_step, frequency)`` as ints, or raises."""
    begin_step = check_int("begin_step", begin_step, minimum=0)
    frequency = check_int("frequency", frequency, minimum=1)
    if allow_open_end and end_step == -1:
        return begin_step, -1, frequency
    end_step = check_int("end_step", end_step, minimum=-1 if allow_open_end else 0)
    if end_step < begin_step:
        raise expected_error(
            f"end_step >= begin_step={begin_step}", end_step=end_step
        )
    return begin_step, end_step, frequency


@keras.saving.register_keras_serializable(package="kcompress")
class ConstantSparsity(PruningSchedule):
    """Prunes to one target sparsity, every `frequency` steps from `begin_step`.

    Args:
        target_sparsity: Fraction of weights set to zero, in ``[0, 1)``.
        begin_step: First step on which masks are computed.
        end_step: Last step on which masks are updated; ``-1`` keeps updating.
        frequency: Masks are recomputed every `frequency` steps.

    Example:

    >>> schedule = ConstantSparsity(0.5, begin_step=10, frequency=5)
    >>> [bool(schedule(s)[0]) for s in (5, 10, 12, 15)]
    [False, True, False, True]
    >>> float(schedule(10)[1])
    0.5
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        check_fraction("target_sparsity", target_sparsity)
        steps = _check_steps(begin_step, end_step, frequency, allow_open_end=True)
        self.target_sparsity = float(target_sparsity)
        self.begin_step, self.end_step, self.frequency = steps

    def sparsity(self, step):
        del step
        return ops.convert_to_tensor(self.target_sparsity, "float32")

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="kcompress")
class PolynomialDecay(PruningSchedule):
    """Sparsity rises from `initial_sparsity` to `final_sparsity` polynomially.

    ``s(t) = final + (initial - final) * (1 - p) ** power`` with
    ``p = clip((t - begin_step) / (end_step - begin_step), 0, 1)``: fast at
    first, then slower as fewer weights are left, as in Zhu & Gupta (2017).

    Args:
        initial_sparsity: Sparsity at `begin_step`, in ``[0, 1)``.
        final_sparsity: Sparsity at `end_step` and after, in ``[0, 1)``.
        begin_step: First step on which masks are computed.
        end_step: Step at which `final_sparsity` is reached; ``> begin_step``.
        power: Exponent of the decay (3 by default).
        frequency: Masks are recomputed every `frequency` steps.

    Example:

    >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100)
    >>> [round(float(schedule.sparsity(s)), 3) for s in (0, 50, 100, 200)]
    [0.0, 0.7, 0.8, 0.8]
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        check_fraction("initial_sparsity", initial_sparsity)
        check_fraction("final_sparsity", final_sparsity)
        begin_step, end_step, frequency = _check_steps(
            begin_step, end_step, frequency, allow_open_end=False
        )
        if end_step == begin_step:
            raise expected_error(
                f"end_step > begin_step={begin_step}", end_step=end_step
            )
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
            raise expected_error("power > 0", power=power)
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step = begin_step
        self.end_step = end_step
        self.power = power
        self.frequency = frequency

    def sparsity(self, step):
        progress = ops.cast(step - self.begin_step, "float32") / float(
            self.end_step - self.begin_step
        )
        progress = ops.clip(progress, 0.0, 1.0)
        decay = ops.power(1.0 - progress, float(self.power))
        return self.final_sparsity + (
            self.initial_sparsity - self.final_sparsity
        ) * decay

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="kcompress")
class FunctionSchedule(PruningSchedule):
    """Any callable ``step -> sparsity`` as a schedule.

    Masks are recomputed every `frequency` steps from `begin_step` on. The
    function must be registered with
    `keras.saving.register_keras_serializable` for the model to be saved.

    Args:
        function: Callable taking the integer step (a tensor in `fit`) and
            returning a sparsity in ``[0, 1)``.
        begin_step: First step on which masks are computed.
        end_step: Last step on which masks are updated; ``-1`` keeps updating.
        frequency: Masks are recomputed every `frequency` steps.

    Example:

    >>> schedule = FunctionSchedule(lambda step: 0.5, frequency=10)
    >>> float(schedule(20)[1])
    0.5
    """

    def __init__(self, function, begin_step=0, end_step=-1, frequency=1):
        if not callable(function):
            raise expected_error("a callable step -> sparsity", function=function)
        steps = _check_steps(begin_step, end_step, frequency, allow_open_end=True)
        self.function = function
        self.begin_step, self.end_step, self.frequency = steps

    def sparsity(self, step):
        value = ops.convert_to_tensor(self.function(step), "float32")
        return ops.clip(value, 0.0, 0.9999)

    def get_config(self):
        return {
            "function": keras.saving.serialize_keras_object(self.function),
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["function"] = keras.saving.deserialize_keras_object(
            config["function"]
        )
        return cls(**config)


def get(schedule):
    """Returns a `PruningSchedule` from a schedule, a callable or a config.

    Example:

    >>> get(ConstantSparsity(0.5)).target_sparsity
    0.5
    """
    if isinstance(schedule, PruningSchedule):
        return schedule
    if isinstance(schedule, dict):
        return keras.saving.deserialize_keras_object(schedule)
    if callable(schedule):
        return FunctionSchedule(schedule)
    raise expected_error(
        "a PruningSchedule (e.g. pruning.ConstantSparsity(0.5)) or a callable "
        "step -> sparsity",
        sparsity_schedule=schedule,
    )
