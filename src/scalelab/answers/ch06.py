"""Reference answers to Chapter 6 (hyperparameter tuning): search space, best trial, speedup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scalelab.tuning import build_model, trials_per_minute

__all__ = ["best_hyperparameters", "build_model", "speedup"]


def best_hyperparameters(tuner: Any) -> dict[str, Any]:
    """The hyperparameter values of the finished tuner's best trial, as a dict."""
    return dict(tuner.get_best_hyperparameters(1)[0].values)


def speedup(single: Sequence[dict[str, Any]], distributed: Sequence[dict[str, Any]]) -> float:
    """How many times more trials per minute the distributed run completed than the single one."""
    return trials_per_minute(distributed) / trials_per_minute(single)
