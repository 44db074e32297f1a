"""A Horizontal Pod Autoscaler replayed over a traffic curve: how many replicas it asks for, when
they are ready, and how much of the load finds no capacity."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Rule = Callable[[int, float, float], int]  # (current replicas, metric, target) -> desired


def day_of_traffic(peak: float, minutes: int = 24 * 60, seed: int = 0) -> np.ndarray:
    """Requests/s per minute of a made-up day: a quiet night, a morning ramp, a lunch bump and a
    flash crowd at 19:00 (the load more than doubles within five minutes, then fades), peaking at
    `peak`, with 5% noise."""
    hours = np.arange(minutes) * 24 / minutes

    def rise(at: float, steepness: float) -> np.ndarray:
        return 1 / (1 + np.exp(-np.clip((hours - at) * steepness, -50, 50)))

    shape = (
        0.12
        + 0.3 * rise(8, 2)
        - 0.3 * rise(22.5, 2)
        + 0.35 * np.exp(-(((hours - 12.5) / 1.0) ** 2))
        + 0.75 * rise(19, 100) * np.exp(-np.clip(hours - 19.3, 0, None) / 1.2)
    )
    noisy = shape * (1 + 0.05 * np.random.default_rng(seed).standard_normal(minutes))
    return np.asarray(peak * noisy / noisy.max())


def replay(
    traffic: np.ndarray,
    capacity: float,
    rule: Rule,
    target: float = 0.7,
    start_minutes: int = 1,
    scale_down_minutes: int = 5,
    min_replicas: int = 1,
) -> dict[str, np.ndarray]:
    """Replay `traffic` (requests/s each minute) through `rule` once a minute.

    The metric is each replica's CPU use: the load over the ready capacity (`capacity` requests/s
    per replica), at most 1. New replicas serve after `start_minutes` and count as idle until then
    (as the HPA counts pods that are not ready when it scales up). Scale-down waits for the highest
    recommendation of the last `scale_down_minutes` (Kubernetes' stabilisation window). Returns,
    per minute: replicas asked for, replicas ready, and requests/s beyond the ready capacity.
    """
    ready = np.zeros(len(traffic), dtype=int)
    asked = np.zeros(len(traffic), dtype=int)
    pending: list[tuple[int, int]] = []  # (minute ready, how many)
    current = ready_now = max(min_replicas, math.ceil(traffic[0] / (capacity * target)))
    recommendations: list[int] = []
    for minute, load in enumerate(traffic):
        ready_now += sum(n for when, n in pending if when == minute)
        pending = [(when, n) for when, n in pending if when > minute]
        used = min(1.0, load / (ready_now * capacity))  # a replica's CPU cannot pass 100%
        average = used * ready_now / current  # pods still starting count as idle
        recommendations = [
            *recommendations[-(scale_down_minutes - 1) :],
            rule(current, average, target),
        ]
        wanted = max(recommendations) if recommendations[-1] < current else recommendations[-1]
        if wanted > current:
            pending.append((minute + start_minutes, wanted - current))
        elif wanted < current:
            ready_now -= current - wanted
        current = max(min_replicas, wanted)
        asked[minute], ready[minute] = current, ready_now
    unserved = np.maximum(0.0, traffic - ready * capacity)
    return {"asked": asked, "ready": ready, "unserved": unserved}
