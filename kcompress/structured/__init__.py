"""Structured pruning of keras-hub BERT-family transformers: fewer heads, FFN units and layers.

`prune_transformer` scores heads and feed-forward units (`importance_scores`),
keeps the best of each layer (`make_plan`) and builds a physically smaller
model (`shrink`, on `PrunedBertBackbone`). `sensitivity` measures what each
layer's heads and units are worth, `prune_to_budget` picks per-layer sizes
for a parameter or latency budget, and `IterativeStructuredPruning` prunes a
little at a time inside `fit`.

Scoring, pruning, fine-tuning and the sensitivity table run under the
TensorFlow and JAX backends and under the mixed-precision policies; the
latency budget needs TensorFlow (its candidates are timed as `.tflite`).
"""

from kcompress.structured.api import prune_transformer
from kcompress.structured.backbone import PrunedBertBackbone
from kcompress.structured.budget import BudgetResult, prune_to_budget
from kcompress.structured.callbacks import IterativeStructuredPruning
from kcompress.structured.importance import Importance, importance_scores
from kcompress.structured.layers import PrunedTransformerEncoder
from kcompress.structured.masking import mask_transformer, masked
from kcompress.structured.plan import Plan, make_plan
from kcompress.structured.sensitivity import SensitivityTable, sensitivity
from kcompress.structured.shrink import shrink

__all__ = [
    "BudgetResult",
    "Importance",
    "IterativeStructuredPruning",
    "Plan",
    "PrunedBertBackbone",
    "PrunedTransformerEncoder",
    "SensitivityTable",
    "importance_scores",
    "make_plan",
    "mask_transformer",
    "masked",
    "prune_to_budget",
    "prune_transformer",
    "sensitivity",
    "shrink",
]
