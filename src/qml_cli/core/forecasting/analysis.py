"""`analyze_metric`: the entry point for every prediction type.

Forecasting types return `forecast_metric(...).to_dict()`. `performance_analysis`
compares the last period with the one before and with the same period a year
earlier. `anomaly_detection` flags recent points whose residual after a rolling-median
trend and per-phase median season has a modified z-score (0.6745 * r / MAD, after
Iglewicz and Hoaglin, 1993) above 3.5.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from qml_cli.core.forecasting import calendar
from qml_cli.core.forecasting.engine import FORECAST_TYPES, forecast_metric
from qml_cli.core.forecasting.validation import check_options, check_series
from qml_cli.errors import InvalidInput

SUPPORTED_TYPES = (
    "sales_forecast",
    "demand_forecast",
    "cash_flow",
    "performance_analysis",
    "anomaly_detection",
)
ANOMALY_THRESHOLD = 3.5
# Periods in one comparison window and in one year, by frequency.
WINDOW = {"daily": 7, "weekly": 1, "monthly": 1, "quarterly": 1, "yearly": 1}
YEAR = {"daily": 364, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}


def check_type(metric_type: str) -> None:
    """Raise InvalidInput naming the supported types when `metric_type` is not one."""
    if metric_type not in SUPPORTED_TYPES:
        raise InvalidInput(
            f"unsupported prediction type {metric_type!r}.",
            hint=f"Use one of: {', '.join(SUPPORTED_TYPES)}.",
        )


def analyze_metric(
    timestamps: Sequence[dt.datetime | dt.date],
    values: Sequence[float],
    *,
    metric_type: str,
    horizon: int,
    levels: Sequence[float] = (80, 95),
    missing: str | None = None,
    frequency: str | None = None,
    use_quantum: bool = False,
) -> dict[str, Any]:
    """Run the analysis of `metric_type`; every result carries "type" and "model".

    For anomaly detection `horizon` is the number of most recent periods checked.
    Raises InvalidInput for an unsupported type or invalid input.
    """
    check_type(metric_type)
    if metric_type in FORECAST_TYPES:
        return forecast_metric(
            timestamps,
            values,
            horizon=horizon,
            levels=levels,
            metric_type=metric_type,
            missing=missing,
            frequency=frequency,
            use_quantum=use_quantum,
        ).to_dict()
    check_options(horizon, levels, missing, frequency)
    dates, numbers = check_series(timestamps, values)
    frequency = frequency or calendar.infer_frequency(dates)
    policy = missing or calendar.default_missing(metric_type)
    ordinals, series, _ = calendar.regularise(dates, numbers, frequency, policy, "mean")
    if metric_type == "performance_analysis":
        return compare_periods(ordinals, series, frequency, policy)
    return detect_anomalies(ordinals, series, frequency, horizon, policy)


def _window_summary(
    series: np.ndarray, end: int, width: int
) -> dict[str, float] | None:
    if end - width < 0:
        return None
    window = series[end - width : end]
    return {"total": float(window.sum()), "mean": float(window.mean())}


def _change(current: dict[str, float], earlier: dict[str, float] | None):
    if earlier is None:
        return None
    change = current["total"] - earlier["total"]
    base = abs(earlier["total"])
    return {"absolute": change, "percent": change / base * 100.0 if base > 0 else None}


def compare_periods(
    ordinals, series: np.ndarray, frequency: str, policy: str
) -> dict[str, Any]:
    """Compare the last window with the previous one and with a year earlier."""
    width, year = WINDOW[frequency], YEAR[frequency]
    end = len(series)
    current = _window_summary(series, end, width)
    previous = _window_summary(series, end - width, width)
    year_ago = _window_summary(series, end - year, width)

    def span(stop: int) -> dict[str, str] | None:
        if stop - width < 0:
            return None
        first = calendar.period_start(int(ordinals[stop - width]), frequency)
        last = calendar.period_start(int(ordinals[stop - 1]), frequency)
        return {"start": first.isoformat(), "end": last.isoformat()}

    return {
        "type": "performance_analysis",
        "model": "period_comparison",
        "frequency": frequency,
        "missing_policy": policy,
        "window_periods": width,
        "current": {"span": span(end), **(current or {})},
        "previous": {"span": span(end - width), **(previous or {})}
        if previous
        else None,
        "year_ago": {"span": span(end - year), **(year_ago or {})}
        if year_ago
        else None,
        "change_vs_previous": _change(current, previous) if current else None,
        "change_vs_year_ago": _change(current, year_ago) if current else None,
    }


def _rolling_median(series: np.ndarray, width: int) -> np.ndarray:
    """Return the centred rolling median, edge points taking the nearest full window.

    A truncated window at the end would cover only part of a season.
    """
    if len(series) <= width:
        return np.full(len(series), np.median(series))
    half = width // 2
    windows = np.lib.stride_tricks.sliding_window_view(series, width)
    medians = np.median(windows, axis=1)
    return np.concatenate(
        [
            np.full(half, medians[0]),
            medians,
            np.full(len(series) - len(medians) - half, medians[-1]),
        ]
    )


def robust_residuals(series: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (expected, residual) of a rolling-median trend and median season."""
    width = max(period, 5) | 1
    trend = _rolling_median(series, width)
    detrended = series - trend
    season = np.zeros(len(series))
    if period > 1 and len(series) >= 2 * period:
        phases = np.arange(len(series)) % period
        medians = np.array([np.median(detrended[phases == p]) for p in range(period)])
        season = medians[phases] - np.median(medians)
    expected = trend + season
    return expected, series - expected


def detect_anomalies(
    ordinals, series: np.ndarray, frequency: str, recent: int, policy: str
) -> dict[str, Any]:
    """Flag the last `recent` points whose modified z-score exceeds the threshold."""
    periods = calendar.season_lengths(frequency, len(series))
    period = periods[0] if periods else 1
    expected, residual = robust_residuals(series, period)
    centre = float(np.median(residual))
    mad = float(np.median(np.abs(residual - centre)))
    checked = min(recent, len(series))
    anomalies = []
    for index in range(len(series) - checked, len(series)):
        if mad > 0:
            score = 0.6745 * (residual[index] - centre) / mad
        else:
            score = (
                0.0
                if residual[index] == centre
                else float(np.sign(residual[index]) * np.inf)
            )
        if abs(score) > ANOMALY_THRESHOLD:
            anomalies.append(
                {
                    "date": calendar.period_start(
                        int(ordinals[index]), frequency
                    ).isoformat(),
                    "value": float(series[index]),
                    "expected": float(expected[index]),
                    "score": float(score) if np.isfinite(score) else None,
                    "direction": "high" if residual[index] > centre else "low",
                }
            )
    return {
        "type": "anomaly_detection",
        "model": "robust_seasonal_residual",
        "frequency": frequency,
        "missing_policy": policy,
        "season_length": period,
        "threshold": ANOMALY_THRESHOLD,
        "checked": checked,
        "anomalies": anomalies,
    }
