"""Correlation with the tenant's other metrics: Spearman rank correlation of the
residuals at lags up to a week, corrected with Holm's step-down method."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qml_cli.core.insights.changepoint import lag1_autocorrelation
from qml_cli.core.insights.finding import ALPHA, Finding
from qml_cli.core.insights.series import WEEK, Series

MIN_OVERLAP = 10
# A significant correlation weaker than this is too loose to act on.
MIN_ABS_RHO = 0.3


@dataclass
class LaggedCorrelation:
    """Spearman rho of metric(t) against other(t - lag); positive lag: other leads."""

    other: str
    lag: int
    rho: float
    n: int
    effective_n: float
    p_value: float
    adjusted_p: float = 1.0


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Return Holm's step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def max_lag_steps(series: Series) -> int:
    """Return the number of grid steps in a week (0 for monthly and coarser data)."""
    seconds = {"hour": 3600.0, "day": 86400.0, "week": WEEK}.get(series.step)
    return int(round(WEEK / seconds)) if seconds else 0


def lagged_spearman(
    target: np.ndarray, other: np.ndarray, lag: int, name: str
) -> LaggedCorrelation | None:
    """Correlate target[t] with other[t - lag] over the pairs where both exist.

    The p-value uses the effective sample size n (1 - r1 r2) / (1 + r1 r2) of two
    AR(1) series with lag-1 autocorrelations r1, r2 (Bartlett's approximation),
    since autocorrelated residuals otherwise overstate significance.
    """
    from scipy import stats

    if lag > 0:
        a, b = target[lag:], other[:-lag]
    elif lag < 0:
        a, b = target[:lag], other[-lag:]
    else:
        a, b = target, other
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if len(a) < MIN_OVERLAP or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    rho = float(stats.spearmanr(a, b).statistic)
    r1, r2 = lag1_autocorrelation(a), lag1_autocorrelation(b)
    product = max(min(r1 * r2, 0.95), -0.95)
    effective = max(3.0, len(a) * (1 - product) / (1 + product))
    t = rho * math.sqrt((effective - 2) / max(1e-12, 1 - rho * rho))
    p_value = float(2 * stats.t.sf(abs(t), effective - 2))
    return LaggedCorrelation(name, lag, rho, len(a), effective, p_value)


def align(series: Series, other: Series, values: np.ndarray) -> np.ndarray | None:
    """Place `values` (on the other series' grid) on the grid of `series`; None when
    the two are sampled at different steps."""
    if other.step != series.step:
        return None
    out = np.full(len(series.times), np.nan)
    index = {int(t): i for i, t in enumerate(series.times.astype(np.int64))}
    for position, stamp in enumerate(other.times.astype(np.int64)):
        target = index.get(int(stamp))
        if target is not None:
            out[target] = values[position]
    return out


def correlation_findings(
    series: Series, residual: np.ndarray, others: dict[str, np.ndarray]
) -> list[Finding]:
    """Test every other metric's residual (already on this grid) at every lag in
    [-week, +week] and return one finding per metric whose best lag survives
    Holm's correction over all metric-lag pairs."""
    max_lag = max_lag_steps(series)
    tests = [
        test
        for name, other in others.items()
        for lag in range(-max_lag, max_lag + 1)
        if (test := lagged_spearman(residual, other, lag, name)) is not None
    ]
    if not tests:
        return []
    for test, adjusted in zip(tests, holm([t.p_value for t in tests]), strict=True):
        test.adjusted_p = float(adjusted)
    findings = []
    for name in others:
        own = [t for t in tests if t.other == name]
        if not own:
            continue
        best = min(own, key=lambda t: (t.adjusted_p, -abs(t.rho)))
        if best.adjusted_p < ALPHA and abs(best.rho) >= MIN_ABS_RHO:
            findings.append(_finding(series, best, len(tests)))
    return findings


def _finding(series: Series, test: LaggedCorrelation, comparisons: int) -> Finding:
    sense = "together" if test.rho > 0 else "in opposite directions"
    step = series.step if series.step != "irregular" else "step"
    if test.lag > 0:
        timing = f"{test.other} leads by {test.lag} {step}{'s' if test.lag > 1 else ''}"
    elif test.lag < 0:
        timing = (
            f"{test.other} lags by {-test.lag} {step}{'s' if test.lag < -1 else ''}"
        )
    else:
        timing = "on the same " + step
    message = (
        f"After removing trend and season, the metric and {test.other} move "
        f"{sense} ({timing}; Spearman rho = {test.rho:.2f} over {test.n} "
        f"points, p = {test.adjusted_p:.2g} after Holm's correction for "
        f"{comparisons} comparisons)."
    )
    return Finding(
        type="correlation",
        key=f"correlation:{test.other}",
        title=f"Moves {sense} with {test.other} ({timing})",
        message=message,
        confidence=1.0 - test.adjusted_p,
        relevance=0.2 + 0.6 * abs(test.rho),
        evidence={
            "other": test.other,
            "lag": test.lag,
            "lag_unit": step,
            "rho": test.rho,
            "n": test.n,
            "effective_n": test.effective_n,
            "p_value": test.p_value,
            "adjusted_p": test.adjusted_p,
            "comparisons": comparisons,
        },
    )
