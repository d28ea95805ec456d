"""The evidence study: a side-by-side pre-training comparison of AFiRe with its baselines and ablations.

Run it with ``python benchmarks/evidence.py --preset cpu --out benchmarks/results/evidence``; see
:mod:`benchmarks.evidence_study.runner` for the stages.
"""

from __future__ import annotations

from .arms import ARMS, Arm, get_arm
from .data import FINDINGS, ClosedTestSplit, DownstreamData, Split
from .presets import PRESETS, Preset, get_preset
from .runner import STAGES, Study

__all__ = [
    "ARMS",
    "Arm",
    "DownstreamData",
    "FINDINGS",
    "PRESETS",
    "Preset",
    "STAGES",
    "Split",
    "Study",
    "ClosedTestSplit",
    "get_arm",
    "get_preset",
]
