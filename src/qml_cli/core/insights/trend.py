"""Trend: the Theil-Sen slope with the Mann-Kendall test, seasonal where there is a
season (Hirsch, Slack and Smith 1982)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qml_cli.core.insights.changepoint import lag1_autocorrelation
from qml_cli.core.insights.decompose import Decomposition
from qml_cli.core.insights.finding import (
    ALPHA,
    Finding,
    describe_change,
    percent_of_level,
)
from qml_cli.core.insights.series import Series, robust_scale

# Theil-Sen and Mann-Kendall compare every pair of points; past this many points
# the series is thinned to every k-th point to bound the O(n^2) memory.
MAX_PAIRWISE_POINTS = 4000
# A significant trend smaller than this share of the level over the window is
# not worth an operator's attention.
MIN_TOTAL_CHANGE_PERCENT = 1.0


@dataclass
class KendallTest:
    """The Mann-Kendall statistic S, its variance and two-sided p-value."""

    s: float
    variance: float
    z: float
    p_value: float


def mann_kendall(values: np.ndarray) -> tuple[float, float]:
    """Return S and its variance under no trend, with the correction for ties."""
    n = len(values)
    if n < 3:
        return 0.0, 0.0
    signs = np.sign(values[None, :] - values[:, None])
    s = float(np.triu(signs, 1).sum())
    _, ties = np.unique(values, return_counts=True)
    variance = (
        n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))
    ) / 18.0
    return s, variance


def kendall_test(
    values: np.ndarray, phases: np.ndarray | None, rho: float = 0.0
) -> KendallTest:
    """Run the Mann-Kendall test, summed over phases when `phases` is given.

    The variance is inflated by (1 + rho) / (1 - rho) for a positive lag-1
    autocorrelation rho of the detrended values, the first-order correction for
    serial dependence.
    """
    from scipy import stats

    groups = (
        [values] if phases is None else [values[phases == p] for p in np.unique(phases)]
    )
    s = variance = 0.0
    for group in groups:
        part_s, part_var = mann_kendall(group)
        s += part_s
        variance += part_var
    if rho > 0:
        variance *= (1 + rho) / (1 - rho)
    if variance <= 0:
        return KendallTest(s, variance, 0.0, 1.0)
    z = (s - math.copysign(1.0, s)) / math.sqrt(variance) if s else 0.0
    return KendallTest(s, variance, z, float(2 * stats.norm.sf(abs(z))))


def trend_findings(
    series: Series, parts: Decomposition, offsets: np.ndarray | None = None
) -> list[Finding]:
    """Return the trend finding when Mann-Kendall rejects no trend at ALPHA and the
    change over the window is material; the slope is Theil-Sen on the
    deseasonalised values, reported in percent of the level per rate unit.
    `offsets` (one per observed point) are subtracted first, so that the level
    shifts reported on their own do not count as trend."""
    from scipy import stats

    observed = series.observed
    positions = np.flatnonzero(observed)
    shifts = np.zeros(len(positions)) if offsets is None else offsets
    adjusted = (series.values - parts.seasonal)[observed] - shifts
    if len(adjusted) < 8 or np.ptp(adjusted) == 0:
        return []
    thin = max(1, math.ceil(len(adjusted) / MAX_PAIRWISE_POINTS))
    u, y = positions[::thin], adjusted[::thin]
    slope, intercept, low, high = stats.theilslopes(y, u)
    rho = max(0.0, lag1_autocorrelation(y - (intercept + slope * u)))
    phases = u % parts.period if parts.period else None
    test = kendall_test((series.values[observed] - shifts)[::thin], phases, rho)
    level = float(np.median(adjusted))
    spread = robust_scale(adjusted)
    span = float(positions[-1] - positions[0])
    total_pct = percent_of_level(slope * span, level, spread)
    material = (
        abs(total_pct) >= MIN_TOTAL_CHANGE_PERCENT
        if total_pct is not None
        else abs(slope * span) >= spread
    )
    if test.p_value >= ALPHA or not material or np.sign(slope) != np.sign(test.s):
        return []
    return [
        _finding(series, slope, (low, high), level, spread, span, test, parts.period)
    ]


def _finding(
    series: Series,
    slope: float,
    interval: tuple[float, float],
    level: float,
    spread: float,
    span: float,
    test: KendallTest,
    period: int | None,
) -> Finding:
    per_unit = slope * series.steps_per_unit
    unit = f"per {series.rate_unit}"
    rate = describe_change(per_unit, level, spread, unit)
    direction = "rising" if slope > 0 else "falling"
    seasonal = " (seasonal Mann-Kendall)" if period else ""
    message = (
        f"The metric is {direction} by {rate} of its level "
        f"({per_unit:+.4g} {unit}, 95% interval "
        f"{interval[0] * series.steps_per_unit:+.4g} to "
        f"{interval[1] * series.steps_per_unit:+.4g}); the trend is "
        f"significant with p = {test.p_value:.2g}{seasonal}."
    )
    rate_pct = percent_of_level(per_unit, level, spread)
    total_pct = percent_of_level(slope * span, level, spread)
    size = (
        abs(total_pct) / 20.0
        if total_pct is not None
        else abs(slope * span) / (4 * spread)
    )
    return Finding(
        type="trend",
        key="trend",
        title=f"Metric {direction} {rate}",
        message=message,
        confidence=1.0 - test.p_value,
        relevance=0.4 + 0.6 * min(1.0, size),
        evidence={
            "slope_per_unit": per_unit,
            "unit": series.rate_unit,
            "percent_per_unit": rate_pct,
            "total_change_percent": total_pct,
            "slope_low": interval[0] * series.steps_per_unit,
            "slope_high": interval[1] * series.steps_per_unit,
            "level": level,
            "mann_kendall_s": test.s,
            "z": test.z,
            "p_value": test.p_value,
            "seasonal_period": period,
        },
    )
