"""Segmentation: natural groups of the metric's values by optimal one-dimensional
k-means (dynamic programming as in Wang and Song 2011), with k chosen by the
Bayesian information criterion of the matching Gaussian mixture."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qml_cli.core.insights.finding import Finding, describe_change
from qml_cli.core.insights.series import Series

MAX_GROUPS = 6
MIN_SEGMENTATION_POINTS = 20
# Each group keeps at least this share of the points, so a lone outlier is not a
# group of its own.
MIN_GROUP_SHARE = 0.05


@dataclass
class Grouping:
    """Contiguous groups of sorted values; bounds[i] is the first index of group i."""

    k: int
    bounds: list[int]
    bic: float


def optimal_kmeans(sorted_values: np.ndarray, k: int, min_size: int) -> list[int]:
    """Split sorted values into k contiguous groups of at least `min_size` points
    with the least within-group sum of squares; return the group start indices.
    O(k n^2) time; raises ValueError when k * min_size exceeds n."""
    n = len(sorted_values)
    if k * min_size > n:
        raise ValueError(f"cannot form {k} groups of {min_size} from {n} points")
    s1 = np.concatenate(([0.0], np.cumsum(sorted_values)))
    s2 = np.concatenate(([0.0], np.cumsum(sorted_values**2)))
    cost = np.full((k + 1, n + 1), np.inf)
    start = np.zeros((k + 1, n + 1), dtype=np.int64)
    cost[0, 0] = 0.0
    for groups in range(1, k + 1):
        for stop in range(groups * min_size, n + 1):
            first = np.arange((groups - 1) * min_size, stop - min_size + 1)
            size = stop - first
            within = s2[stop] - s2[first] - (s1[stop] - s1[first]) ** 2 / size
            total = cost[groups - 1, first] + within
            best = int(np.argmin(total))
            cost[groups, stop] = total[best]
            start[groups, stop] = first[best]
    bounds = []
    stop = n
    for groups in range(k, 0, -1):
        stop = int(start[groups, stop])
        bounds.append(stop)
    return sorted(bounds)


def mixture_bic(sorted_values: np.ndarray, bounds: list[int]) -> float:
    """Return the BIC of the Gaussian mixture with one component per group (weight,
    mean and variance from the group), with 3k - 1 free parameters."""
    n = len(sorted_values)
    edges = [*bounds, n]
    floor = 1e-6 * (np.var(sorted_values) or 1.0)
    density = np.zeros(n)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        part = sorted_values[low:high]
        variance = max(float(np.var(part)), floor)
        weight = len(part) / n
        density += (
            weight
            * np.exp(-((sorted_values - part.mean()) ** 2) / (2 * variance))
            / math.sqrt(2 * math.pi * variance)
        )
    log_likelihood = float(np.sum(np.log(np.maximum(density, 1e-300))))
    k = len(bounds)
    return -2.0 * log_likelihood + (3 * k - 1) * math.log(n)


def choose_groups(values: np.ndarray) -> tuple[Grouping, np.ndarray]:
    """Fit k = 1..MAX_GROUPS and return the grouping with the least BIC, with the
    Schwarz weights exp(-BIC/2), normalised, of every k tried."""
    ordered = np.sort(values)
    min_size = max(3, math.ceil(MIN_GROUP_SHARE * len(ordered)))
    fits = []
    for k in range(1, MAX_GROUPS + 1):
        if k * min_size > len(ordered):
            break
        bounds = optimal_kmeans(ordered, k, min_size)
        fits.append(Grouping(k, bounds, mixture_bic(ordered, bounds)))
    bic = np.array([fit.bic for fit in fits])
    weights = np.exp(-(bic - bic.min()) / 2.0)
    return min(fits, key=lambda fit: fit.bic), weights / weights.sum()


def segmentation_findings(series: Series, level: float, spread: float) -> list[Finding]:
    """Return the segmentation finding when more than one group is chosen; its
    confidence is the Schwarz weight of all k > 1 against k = 1."""
    values = series.values[series.observed]
    if len(values) < MIN_SEGMENTATION_POINTS or np.ptp(values) == 0:
        return []
    grouping, weights = choose_groups(values)
    if grouping.k < 2:
        return []
    ordered = np.sort(values)
    edges = [*grouping.bounds, len(ordered)]
    groups = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        part = ordered[low:high]
        groups.append(
            {
                "low": float(part[0]),
                "high": float(part[-1]),
                "mean": float(part.mean()),
                "count": int(len(part)),
                "share": len(part) / len(ordered),
            }
        )
    top, bottom = groups[-1], groups[0]
    message = (
        f"The {series.step} values fall into {grouping.k} natural groups. The "
        f"highest group ({top['share']:.0%} of {series.step}s, "
        f"{top['low']:.4g} to {top['high']:.4g}) averages "
        f"{describe_change(top['mean'] - level, level, spread)} against the "
        f"median; the lowest ({bottom['share']:.0%}, {bottom['low']:.4g} to "
        f"{bottom['high']:.4g}) averages "
        f"{describe_change(bottom['mean'] - level, level, spread)}."
    )
    return [
        Finding(
            type="segmentation",
            key="segmentation",
            title=f"{grouping.k} natural groups",
            message=message,
            confidence=float(1.0 - weights[0]),
            relevance=0.3,
            evidence={
                "k": grouping.k,
                "bic": grouping.bic,
                "groups": groups,
                "schwarz_weights": [float(w) for w in weights],
            },
        )
    ]
