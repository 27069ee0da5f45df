"""Benchmark and intermittent-demand forecasters, vectorised over a panel.

Naive, seasonal naive and drift follow the usual random-walk variances. Croston and
TSB (Teunter, Syntetos and Babai, 2011) smooth demand sizes and intervals (Croston) or
demand probability (TSB) with a fixed weight, as is standard for sparse series.
"""

from __future__ import annotations

import numpy as np

from qml_cli.core.forecasting.ets import ModelForecast
from qml_cli.core.forecasting.panel import Panel

INTERMITTENT_ALPHA = 0.1


def _rms_difference(panel: Panel, lag: int) -> np.ndarray:
    """Return the root mean square of lag-`lag` differences of each row (0 if none)."""
    if lag >= panel.width:
        return np.zeros(panel.n)
    diffs = panel.values[:, lag:] - panel.values[:, :-lag]
    present = np.isfinite(diffs)
    count = present.sum(axis=1)
    total = np.where(present, diffs**2, 0.0).sum(axis=1)
    return np.sqrt(total / np.maximum(count, 1))


def forecast_naive(panel: Panel, horizon: int) -> ModelForecast:
    """Repeat the last value; std = sigma * sqrt(h)."""
    steps = np.arange(1, horizon + 1)[None, :]
    point = np.repeat(panel.last()[:, None], horizon, axis=1)
    std = _rms_difference(panel, 1)[:, None] * np.sqrt(steps)
    return ModelForecast(point, std)


def forecast_seasonal_naive(panel: Panel, horizon: int, period: int) -> ModelForecast:
    """Repeat the last season; rows shorter than one season get the naive forecast."""
    if period < 2 or panel.width < period:
        return forecast_naive(panel, horizon)
    steps = np.arange(horizon)
    columns = panel.width - period + steps % period
    point = panel.values[:, columns]
    naive = forecast_naive(panel, horizon)
    short = panel.lengths < period
    point = np.where(short[:, None], naive.point, point)
    seasons_ahead = np.floor(steps / period) + 1
    std = _rms_difference(panel, period)[:, None] * np.sqrt(seasons_ahead)[None, :]
    std = np.where(short[:, None], naive.std, std)
    return ModelForecast(point, std)


def forecast_drift(panel: Panel, horizon: int) -> ModelForecast:
    """Extend the line from the first to the last value; std grows as sqrt(h(1+h/T))."""
    steps = np.arange(1, horizon + 1)[None, :]
    span = np.maximum(panel.lengths - 1, 1)[:, None]
    slope = (panel.last() - panel.first())[:, None] / span
    point = panel.last()[:, None] + slope * steps
    diffs = panel.values[:, 1:] - panel.values[:, :-1]
    residual = diffs - slope
    present = np.isfinite(residual)
    sigma = np.sqrt(
        np.where(present, residual**2, 0.0).sum(axis=1)
        / np.maximum(present.sum(axis=1) - 1, 1)
    )
    std = sigma[:, None] * np.sqrt(steps * (1.0 + steps / span))
    return ModelForecast(point, std)


def _intermittent(panel: Panel, horizon: int, probability: bool) -> ModelForecast:
    alpha = INTERMITTENT_ALPHA
    values = panel.filled(0.0)
    head, valid = panel.head(panel.width)
    demand = np.where(valid, head, 0.0) > 0
    first_size = np.where(
        demand.any(axis=1), head[np.arange(panel.n), demand.argmax(axis=1)], 0.0
    )
    size = np.nan_to_num(first_size)
    interval = np.maximum(panel.lengths / np.maximum(demand.sum(axis=1), 1), 1.0)
    chance = 1.0 / interval
    since = np.ones(panel.n)
    sse = np.zeros(panel.n)
    for column in range(int(panel.start.min()), panel.width):
        active = panel.start <= column
        y = values[:, column]
        estimate = size * chance if probability else size / interval
        sse += np.where(active, (y - estimate) ** 2, 0.0)
        hit = active & (y > 0)
        size = np.where(hit, size + alpha * (y - size), size)
        if probability:
            chance = np.where(active, chance + alpha * (hit - chance), chance)
        else:
            interval = np.where(hit, interval + alpha * (since - interval), interval)
            since = np.where(hit, 1.0, np.where(active, since + 1.0, since))
    estimate = size * chance if probability else size / interval
    sigma = np.sqrt(sse / np.maximum(panel.lengths - 1, 1))
    point = np.repeat(estimate[:, None], horizon, axis=1)
    std = np.repeat(sigma[:, None], horizon, axis=1)
    return ModelForecast(point, std)


def forecast_croston(panel: Panel, horizon: int) -> ModelForecast:
    """Croston's method: smoothed demand size over smoothed inter-demand interval."""
    return _intermittent(panel, horizon, probability=False)


def forecast_tsb(panel: Panel, horizon: int) -> ModelForecast:
    """TSB: smoothed demand size times smoothed demand probability."""
    return _intermittent(panel, horizon, probability=True)


def zero_share(panel: Panel) -> np.ndarray:
    """Return the share of observed values that are exactly zero, per row."""
    observed = panel.observed()
    zeros = (panel.filled(1.0) == 0) & observed
    return zeros.sum(axis=1) / np.maximum(observed.sum(axis=1), 1)
