"""Magnitude pruning for Keras 3 models: schedules, wrappers, callbacks, policies, strip."""

from kcompress.pruning.api import prune_low_magnitude, strip_pruning
from kcompress.pruning.callbacks import PruningSummaries, UpdatePruningStep
from kcompress.pruning.masks import NM, Block, SparsityPattern, Unstructured
from kcompress.pruning.policy import PruningPolicy
from kcompress.pruning.report import SparsityReport, sparsity_report
from kcompress.pruning.schedules import (
    ConstantSparsity,
    FunctionSchedule,
    PolynomialDecay,
    PruningSchedule,
)
from kcompress.pruning.wrapper import PruneLowMagnitude, pruning_wrappers
from kcompress.pruning.xnnpack import XNNPackSparse

__all__ = [
    "Block",
    "ConstantSparsity",
    "FunctionSchedule",
    "NM",
    "PolynomialDecay",
    "PruneLowMagnitude",
    "PruningPolicy",
    "PruningSchedule",
    "PruningSummaries",
    "SparsityPattern",
    "SparsityReport",
    "Unstructured",
    "UpdatePruningStep",
    "XNNPackSparse",
    "prune_low_magnitude",
    "pruning_wrappers",
    "sparsity_report",
    "strip_pruning",
]
