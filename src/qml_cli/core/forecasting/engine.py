"""`forecast_metric`: one metric's history in, an explained forecast out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from qml_cli.core.forecasting import calendar
from qml_cli.core.forecasting.batch import CORE_MODELS, PanelForecast, forecast_panel
from qml_cli.core.forecasting.panel import Panel
from qml_cli.core.forecasting.result import Forecast
from qml_cli.core.forecasting.validation import check_options, check_series
from qml_cli.core.logs import get_logger

NONNEGATIVE_TYPES = ("sales_forecast", "demand_forecast")
FORECAST_TYPES = ("sales_forecast", "demand_forecast", "cash_flow")
MIN_CROSS_VALIDATION = 5  # fewer observations: no model choice, a stated fallback

log = get_logger("forecasting")


def forecast_metric(
    timestamps: Sequence[dt.datetime | dt.date],
    values: Sequence[float],
    *,
    horizon: int,
    levels: Sequence[float] = (80, 95),
    metric_type: str = "sales_forecast",
    missing: str | None = None,
    frequency: str | None = None,
    use_quantum: bool = False,
) -> Forecast:
    """Forecast one metric `horizon` periods ahead with intervals at `levels` percent.

    Raises InvalidInput on NaN or infinite values, unsorted or duplicate timestamps,
    a horizon below 1 or a level outside (0, 100). Short and constant series never
    raise: they get a simpler model and the reason states why. The default forecast
    combines damped Holt, two optimised Theta models and Holt-Winters; with
    `use_quantum` the members are chosen per series as a QUBO, solved by exact
    enumeration and by QAOA, and `selection` reports both.
    """
    levels_checked = check_options(horizon, levels, missing, frequency)
    dates, numbers = check_series(timestamps, values)
    frequency = frequency or calendar.infer_frequency(dates)
    policy = missing or calendar.default_missing(metric_type)
    aggregate = "sum" if metric_type in FORECAST_TYPES else "mean"
    ordinals, series, gaps = calendar.regularise(
        dates, numbers, frequency, policy, aggregate
    )
    periods = calendar.season_lengths(frequency, len(series))
    # Sales with returns can have negative days; only a history that never went
    # below zero makes the forecast floor at zero a fact rather than a guess.
    nonnegative = metric_type in NONNEGATIVE_TYPES and bool(np.min(series) >= 0)

    if np.ptp(series) == 0:
        result, notes = _constant(series, horizon, levels_checked), ()
    elif len(series) < MIN_CROSS_VALIDATION:
        result, notes = _short(series, horizon, levels_checked, nonnegative), ()
    else:
        result = forecast_panel(
            Panel.from_series([series]),
            horizon,
            periods,
            levels_checked,
            nonnegative=nonnegative,
            names=None if use_quantum else CORE_MODELS,
            strategy="qubo" if use_quantum else "combine",
            use_quantum=use_quantum,
        )
        notes = ()
    if gaps and policy == "skip":
        notes = (
            f"{gaps} missing periods were skipped, so seasonal phases after a gap "
            "may be shifted.",
        )
    log.info("forecast computed", extra={"operation": "forecast", "success": True})
    return _to_forecast(
        result, ordinals, frequency, horizon, periods, policy, metric_type, gaps, notes
    )


def _constant(series: np.ndarray, horizon: int, levels) -> PanelForecast:
    point = np.full((1, horizon), series[-1])
    reason = (
        f"The history is constant at {series[-1]:g}, so the forecast repeats it "
        "with zero-width intervals."
    )
    zero = {"smape": np.zeros(1), "mase": np.zeros(1)}
    return PanelForecast(
        point,
        {level: (point.copy(), point.copy()) for level in levels},
        ["constant"],
        [reason],
        zero["smape"],
        zero["mase"],
        {},
    )


def _short(
    series: np.ndarray, horizon: int, levels, nonnegative: bool
) -> PanelForecast:
    """Forecast a series too short to cross-validate with the naive method."""
    from qml_cli.core.forecasting.simple import forecast_naive

    panel = Panel.from_series([series])
    output = forecast_naive(panel, horizon)
    z_scores = {80.0: 1.2816, 95.0: 1.96}
    from scipy.special import ndtri

    intervals = {}
    for level in levels:
        z = z_scores.get(level, float(ndtri(0.5 + level / 200.0)))
        lower, upper = output.point - z * output.std, output.point + z * output.std
        if nonnegative:
            lower, upper = np.maximum(lower, 0.0), np.maximum(upper, 0.0)
        intervals[level] = (lower, upper)
    point = np.maximum(output.point, 0.0) if nonnegative else output.point
    reason = (
        f"Only {len(series)} observations, fewer than the {MIN_CROSS_VALIDATION} "
        "needed to cross-validate, so the last value is repeated (naive)."
    )
    nan = np.full(1, np.nan)
    return PanelForecast(point, intervals, ["naive"], [reason], nan, nan, {})


def _to_forecast(
    result: PanelForecast,
    ordinals,
    frequency,
    horizon,
    periods,
    policy,
    metric_type,
    gaps,
    notes,
) -> Forecast:
    candidates = {
        name: {"smape": _float(smape[0]), "mase": _float(mase[0])}
        for name, (smape, mase) in result.candidates.items()
    }
    return Forecast(
        dates=calendar.future_dates(int(ordinals[-1]), frequency, horizon),
        point=result.point[0].copy(),
        intervals={
            level: (lower[0].copy(), upper[0].copy())
            for level, (lower, upper) in result.intervals.items()
        },
        model=result.model[0],
        reason=result.reason[0],
        cv_error={
            "smape": _float(result.cv_smape[0]),
            "mase": _float(result.cv_mase[0]),
        },
        candidates=candidates,
        season_length=periods[0] if periods else 1,
        frequency=frequency,
        n_observations=len(ordinals),
        missing_policy=policy,
        ensemble=result.ensemble[0] if result.ensemble else (),
        selection=result.selection[0] if result.selection else None,
        metric_type=metric_type,
        gaps_filled=gaps if policy != "skip" else 0,
        notes=notes,
    )


def _float(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
