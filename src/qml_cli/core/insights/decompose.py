"""Robust decomposition of a series into trend, season and residual, and the
test of whether a season exists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qml_cli.core.insights.changepoint import Segment, segment_line
from qml_cli.core.insights.series import Series, noise_scale, robust_scale

DEFAULT_TREND_WINDOW = 7
WEEKDAYS = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass
class Decomposition:
    """values = trend + seasonal + residual; residual is NaN at gaps.

    The trend is the piecewise-linear fit of the level-shift segmentation, so the
    residual keeps its noise scale across shifts. `noise` is the scale that the
    segmentation used.
    """

    trend: np.ndarray
    seasonal: np.ndarray
    residual: np.ndarray
    period: int | None
    segments: list[Segment]
    positions: np.ndarray  # grid positions of the observed points
    noise: float

    @property
    def deseasonalised(self) -> np.ndarray:
        return self.trend + self.residual


@dataclass
class SeasonTest:
    """The Kruskal-Wallis test of a seasonal period and the season's strength."""

    period: int
    p_value: float
    strength: float  # 1 - Var(residual) / Var(seasonal + residual), in [0, 1]
    profile: np.ndarray  # the seasonal component by phase, mean zero


def trend_window(period: int | None, n: int) -> int:
    """Return the odd window of the running median: one full period (plus one when
    the period is even) so that the season cancels, capped by the series length."""
    window = (
        period + 1 if period and period % 2 == 0 else (period or DEFAULT_TREND_WINDOW)
    )
    window = min(window, n if n % 2 else n - 1)
    return max(window, 1)


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Return the centred running median; the half windows at each edge are filled
    by a straight line fitted to the nearest `window` full-window medians."""
    n = len(values)
    if window <= 1 or n < window:
        return np.full(n, float(np.median(values)))
    views = np.lib.stride_tricks.sliding_window_view(values, window)
    core = np.median(views, axis=1)
    half = window // 2
    out = np.empty(n)
    out[half : n - half] = core
    for side in (0, 1):
        anchor = core[:window] if side == 0 else core[-window:]
        positions = np.arange(len(anchor)) + (
            half if side == 0 else n - half - len(anchor)
        )
        slope, intercept = (
            np.polyfit(positions, anchor, 1)
            if len(anchor) > 1
            else (0.0, float(anchor[0]))
        )
        targets = np.arange(half) if side == 0 else np.arange(n - half, n)
        out[targets] = intercept + slope * targets
    return out


def seasonal_profile(
    detrended: np.ndarray, observed: np.ndarray, period: int
) -> np.ndarray:
    """Return the seasonal profile: at each phase, the mean of the detrended values
    after clipping them to three robust scales around the phase median, centred to
    mean 0. The clipped mean keeps outliers out without the shrunken residuals
    that a plain median leaves at its own point."""
    phases = np.arange(len(detrended)) % period
    profile = np.zeros(period)
    for phase in range(period):
        chosen = detrended[(phases == phase) & observed]
        if len(chosen) == 0:
            continue
        center = np.median(chosen)
        bound = 3.0 * robust_scale(chosen)
        profile[phase] = np.clip(chosen, center - bound, center + bound).mean()
    return profile - profile.mean()


def decompose(series: Series, period: int | None) -> Decomposition:
    """Split the series into trend, seasonal profile and residual.

    A running median (two passes with the phase medians) gives a first season; the
    deseasonalised points are then segmented into linear pieces, which become the
    trend, and the season is estimated once more against that trend.
    """
    filled = series.filled()
    observed = series.observed
    phases = np.arange(len(filled)) % (period or 1)
    seasonal = np.zeros(len(filled))
    window = trend_window(period, len(filled))
    rough = running_median(filled, window)
    if period:
        for _ in range(2):
            seasonal = seasonal_profile(filled - rough, observed, period)[phases]
            rough = running_median(filled - seasonal, window)

    # Outliers are clipped to five noise scales around the running median before
    # segmentation, so that a spike does not buy itself a segment.
    positions = np.flatnonzero(observed)
    adjusted = (series.values - seasonal)[observed]
    sigma = noise_scale(adjusted)
    bound = 5.0 * sigma
    clipped = np.clip(adjusted, rough[observed] - bound, rough[observed] + bound)
    trend, segments, scale = segment_line(positions, clipped, sigma, len(filled))

    if period:
        seasonal = seasonal_profile(filled - trend, observed, period)[phases]
    residual = series.values - trend - seasonal
    return Decomposition(trend, seasonal, residual, period, segments, positions, scale)


def test_season(series: Series, period: int) -> SeasonTest | None:
    """Test the period with Kruskal-Wallis on the detrended values grouped by phase;
    return None when the series has fewer than two full periods."""
    from scipy import stats

    if series.n_observed < 2 * period or len(series.values) < 2 * period:
        return None
    parts = decompose(series, period)
    observed = series.observed
    detrended = (series.values - parts.trend)[observed]
    phases = (np.arange(len(series.values)) % period)[observed]
    groups = [detrended[phases == phase] for phase in range(period)]
    groups = [group for group in groups if len(group) >= 2]
    if len(groups) < 2 or np.ptp(detrended) == 0:
        return None
    p_value = float(stats.kruskal(*groups).pvalue)
    residual = parts.residual[observed]
    total = np.var(parts.seasonal[observed] + residual)
    strength = 0.0 if total == 0 else max(0.0, 1.0 - np.var(residual) / total)
    profile = seasonal_profile(series.filled() - parts.trend, observed, period)
    return SeasonTest(period, p_value, float(strength), profile)


def phase_label(series: Series, period: int, phase: int) -> str:
    """Name a phase of the season in calendar words (times are UTC)."""
    stamp = series.times[phase].astype("datetime64[s]").item()
    if series.step == "hour" and period == 24:
        return f"{stamp:%H}:00 UTC"
    if series.step == "hour" and period == 168:
        return f"{WEEKDAYS[stamp.weekday()]} {stamp:%H}:00 UTC"
    if series.step == "day" and period == 7:
        return WEEKDAYS[stamp.weekday()]
    if series.step == "day":
        return f"{MONTHS[stamp.month - 1]} {stamp.day}"
    if series.step == "week":
        return f"ISO week {stamp.isocalendar().week}"
    if series.step == "month":
        return MONTHS[stamp.month - 1]
    return f"phase {phase + 1} of {period}"
