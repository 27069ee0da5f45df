"""Prediction and optimisation findings: a forecast summary from a forecasting
function, and the gap between typical and best periods."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from qml_cli.core.insights.finding import (
    ALPHA,
    Finding,
    describe_change,
    percent_of_level,
)
from qml_cli.core.insights.series import Series

# forecast_fn(times as datetime64[s], values without gaps, horizon in steps) returns
# a mapping with "forecast" (horizon floats) and optionally "lower", "upper", "model".
ForecastFn = Callable[[np.ndarray, np.ndarray, int], Mapping[str, Any]]

HORIZONS = {"hour": 48, "day": 14, "week": 8, "month": 6, "year": 3}
# Grid steps per block when comparing periods: days of hours, weeks of days,
# four-week blocks of weeks, quarters of months.
BLOCKS = {
    "hour": (24, "day"),
    "day": (7, "week"),
    "week": (4, "four-week block"),
    "month": (3, "quarter"),
}
MIN_BLOCKS = 4
MIN_GAP_PERCENT = 5.0


def engine_forecast(times: np.ndarray, values: np.ndarray, horizon: int) -> dict:
    """Forecast with the forecasting engine (`forecast_metric`), returning the point
    forecast and its 80% interval in the `ForecastFn` form. The cash-flow type is
    used because it lets forecasts go negative, as some metrics do."""
    from qml_cli.core.forecasting import forecast_metric

    stamps = [stamp.item() for stamp in times.astype("datetime64[s]")]
    result = forecast_metric(
        stamps, values, horizon=horizon, levels=(80,), metric_type="cash_flow"
    )
    lower, upper = result.intervals[80.0]
    return {
        "forecast": result.point,
        "lower": lower,
        "upper": upper,
        "model": result.model,
    }


def horizon_for(series: Series) -> int:
    """Return the forecast horizon in steps, at most a quarter of the series."""
    return max(1, min(HORIZONS.get(series.step, 7), len(series.values) // 4))


def _seasonal_naive(
    history: np.ndarray, horizon: int, period: int | None
) -> np.ndarray:
    lag = period if period and len(history) >= period else 1
    return np.array([history[len(history) - lag + (h % lag)] for h in range(horizon)])


def backtest_sign_test(
    series: Series, forecast_fn: ForecastFn, horizon: int, period: int | None
) -> tuple[float, int, int]:
    """Hold out the last `horizon` points, forecast them, and test with a one-sided
    sign test whether the forecast's absolute errors beat the seasonal naive
    forecast's; return (p-value, wins, comparisons)."""
    from scipy import stats

    filled = series.filled()
    history, actual = filled[:-horizon], filled[-horizon:]
    predicted = np.asarray(
        forecast_fn(series.times[:-horizon], history, horizon)["forecast"], dtype=float
    )
    naive = _seasonal_naive(history, horizon, period)
    model_error = np.abs(predicted[:horizon] - actual)
    naive_error = np.abs(naive - actual)
    differ = model_error != naive_error
    wins = int(np.sum(model_error[differ] < naive_error[differ]))
    trials = int(differ.sum())
    if trials == 0:
        return 1.0, 0, 0
    return (
        float(stats.binomtest(wins, trials, 0.5, alternative="greater").pvalue),
        wins,
        trials,
    )


def prediction_findings(
    series: Series, forecast_fn: ForecastFn | None, period: int | None, spread: float
) -> list[Finding]:
    """Summarise the forecast of the next horizon against the last equal span; the
    confidence is 1 - p of the backtest sign test against seasonal naive."""
    horizon = horizon_for(series)
    if forecast_fn is None or len(series.values) < 3 * horizon:
        return []
    result = forecast_fn(series.times, series.filled(), horizon)
    forecast = np.asarray(result["forecast"], dtype=float)[:horizon]
    recent = series.filled()[-horizon:]
    p_value, wins, trials = backtest_sign_test(series, forecast_fn, horizon, period)
    change = float(forecast.mean() - recent.mean())
    wording = describe_change(change, float(recent.mean()), spread)
    unit = series.step if series.step != "irregular" else "step"
    message = (
        f"Over the next {horizon} {unit}s the forecast averages "
        f"{forecast.mean():.4g} against {recent.mean():.4g} in the last "
        f"{horizon} ({wording}). In a backtest on the last {horizon} points "
        f"it beat the seasonal naive forecast on {wins} of {trials} "
        f"(sign test p = {p_value:.2g})."
    )
    evidence: dict[str, Any] = {
        "horizon": horizon,
        "unit": unit,
        "forecast_mean": float(forecast.mean()),
        "recent_mean": float(recent.mean()),
        "change_percent": percent_of_level(change, float(recent.mean()), spread),
        "backtest_wins": wins,
        "backtest_trials": trials,
        "p_value": p_value,
        "forecast": forecast,
        "model": result.get("model"),
    }
    for bound in ("lower", "upper"):
        if result.get(bound) is not None:
            evidence[bound] = np.asarray(result[bound], dtype=float)[:horizon]
    return [
        Finding(
            type="prediction",
            key="prediction",
            title=f"Forecast {wording} over the next {horizon} {unit}s",
            message=message,
            confidence=1.0 - p_value,
            relevance=0.5,
            evidence=evidence,
        )
    ]


def optimization_findings(series: Series) -> list[Finding]:
    """Compare the median total of complete blocks (weeks of daily data, ...) with
    the mean of the best quarter of blocks. The confidence is 1 - p of a
    Kruskal-Wallis test that the blocks differ at all. Higher is taken as better."""
    from scipy import stats

    if series.step not in BLOCKS:
        return []
    size, name = BLOCKS[series.step]
    count = len(series.values) // size
    # Blocks end at the last point, so a partial block is dropped at the start.
    blocks = series.values[len(series.values) - count * size :].reshape(count, size)
    complete = blocks[~np.isnan(blocks).any(axis=1)]
    if len(complete) < MIN_BLOCKS or np.ptp(complete) == 0:
        return []
    totals = complete.sum(axis=1)
    typical = float(np.median(totals))
    best = float(np.sort(totals)[-max(1, len(totals) // 4) :].mean())
    gap = best - typical
    gap_pct = percent_of_level(gap, typical, float(np.std(totals)) * 0.1)
    p_value = float(stats.kruskal(*complete).pvalue)
    if p_value >= ALPHA or (gap_pct is not None and gap_pct < MIN_GAP_PERCENT):
        return []
    wording = describe_change(gap, typical, float(np.std(totals)))
    message = (
        f"A typical {name} totals {typical:.4g}; the best quarter of "
        f"{name}s average {best:.4g}. Bringing a typical {name} up to them "
        f"is worth {gap:.4g} ({wording}) per {name}; the {name}s differ "
        f"beyond chance (Kruskal-Wallis p = {p_value:.2g})."
    )
    return [
        Finding(
            type="optimization",
            key="optimization",
            title=f"Opportunity of {wording} per {name}",
            message=message,
            confidence=1.0 - p_value,
            relevance=0.3 + 0.5 * min(1.0, (gap_pct or 0.0) / 50.0),
            evidence={
                "block": name,
                "blocks": int(len(totals)),
                "typical": typical,
                "best": best,
                "gap": gap,
                "gap_percent": gap_pct,
                "p_value": p_value,
            },
        )
    ]
