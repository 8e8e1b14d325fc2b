"""Magnitude pruning for Keras 3 models: schedules, wrappers, callbacks, strip."""

from kcompress.pruning.api import prune_low_magnitude, strip_pruning
from kcompress.pruning.callbacks import PruningSummaries, UpdatePruningStep
from kcompress.pruning.masks import NM, Block, SparsityPattern, Unstructured
from kcompress.pruning.report import SparsityReport, sparsity_report
from kcompress.pruning.schedules import (
    ConstantSparsity,
    FunctionSchedule,
    PolynomialDecay,
    PruningSchedule,
)
from kcompress.pruning.wrapper import PruneLowMagnitude, pruning_wrappers

__all__ = [
    "Block",
    "ConstantSparsity",
    "FunctionSchedule",
    "NM",
    "PolynomialDecay",
    "PruneLowMagnitude",
    "PruningSchedule",
    "PruningSummaries",
    "SparsityPattern",
    "SparsityReport",
    "Unstructured",
    "UpdatePruningStep",
    "prune_low_magnitude",
    "pruning_wrappers",
    "sparsity_report",
    "strip_pruning",
]
