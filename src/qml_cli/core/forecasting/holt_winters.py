"""Holt-Winters additive and multiplicative smoothing, vectorised by grid search.

Error-correction form with e = y - yhat and damping phi:
additive:       yhat = l + phi*b + s,    l' = l + phi*b + alpha*e,   s' = s + gamma*e
multiplicative: yhat = (l + phi*b) * s,  l' = l + phi*b + alpha*e/s,
                s' = s + gamma*e/(l + phi*b)
and b' = phi*b + alpha*beta*(e or e/s). The seasonal state of column c is slot c % m.
Multiplicative fits need strictly positive data; the caller enforces that guard.
"""

from __future__ import annotations

import numpy as np

from qml_cli.core.forecasting.ets import ModelForecast, damped_sums
from qml_cli.core.forecasting.panel import Panel

ALPHAS = np.array([0.08, 0.25, 0.5, 0.8])
BETAS = np.array([0.02, 0.1])
GAMMAS = np.array([0.02, 0.1, 0.25])
PHI = 0.98


def _initial(panel: Panel, period: int, multiplicative: bool):
    """Return level, trend and seasonal slots (n, m) from the first two seasons."""
    head, _ = panel.head(2 * period)
    first, second = head[:, :period], head[:, period:]
    level = first.mean(axis=1)
    trend = (second.mean(axis=1) - level) / period
    line = level[:, None] + trend[:, None] * (np.arange(period) - (period - 1) / 2.0)
    seasonal_head = first / line if multiplicative else first - line
    slots = np.empty((panel.n, period))
    phase = (panel.start[:, None] + np.arange(period)[None, :]) % period
    np.put_along_axis(slots, phase, seasonal_head, axis=1)
    start_level = level - trend * (period - 1) / 2.0 - trend
    return start_level, trend, slots


def _run(panel: Panel, period: int, multiplicative: bool, params, states):
    """Run the recursion for parameter grids (n, G); return sse, level, trend, slots."""
    alpha, beta, gamma, phi = params
    level0, trend0, slots0 = states
    shape = np.broadcast_shapes(alpha.shape, (panel.n, 1))
    level = np.broadcast_to(level0[:, None], shape).copy()
    trend = np.broadcast_to(trend0[:, None], shape).copy()
    slots = np.broadcast_to(slots0[:, None, :], shape + (period,)).copy()
    sse = np.zeros(shape)
    filled = panel.filled(0.0)
    for column in range(int(panel.start.min()), panel.width):
        active = (panel.start <= column)[:, None]
        y = filled[:, column : column + 1]
        season = slots[:, :, column % period]
        base = level + phi * trend
        if multiplicative:
            error = np.where(active, y - base * season, 0.0)
            scaled = error / season
            season_new = season + gamma * error / base
        else:
            error = np.where(active, y - base - season, 0.0)
            scaled = error
            season_new = season + gamma * error
        sse += error * error
        level = np.where(active, base + alpha * scaled, level)
        trend = np.where(active, phi * trend + alpha * beta * scaled, trend)
        slots[:, :, column % period] = np.where(active, season_new, season)
    return sse, level, trend, slots


def forecast_holt_winters(
    panel: Panel, horizon: int, period: int, multiplicative: bool
) -> ModelForecast:
    """Fit damped Holt-Winters to every row (each at least two seasons long)."""
    grid = np.array(np.meshgrid(ALPHAS, BETAS, GAMMAS, indexing="ij")).reshape(3, -1)
    alpha, beta, gamma = (g[None, :] for g in grid)
    phi = np.full_like(alpha, PHI)
    states = _initial(panel, period, multiplicative)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sse, level, trend, slots = _run(
            panel, period, multiplicative, (alpha, beta, gamma, phi), states
        )
    sse = np.where(np.isfinite(sse), sse, np.inf)
    rows = np.arange(panel.n)
    best = np.argmin(sse, axis=1)
    level, trend, slots = level[rows, best], trend[rows, best], slots[rows, best]
    alpha, beta, gamma = alpha[0, best], beta[0, best], gamma[0, best]
    dof = np.maximum(panel.lengths - 4 - period, 1)
    sigma = np.sqrt(sse[rows, best] / dof)

    sums = damped_sums(np.full(panel.n, PHI), horizon)
    columns = panel.width + np.arange(horizon)
    season = slots[:, columns % period]
    base = level[:, None] + sums * trend[:, None]
    point = base * season if multiplicative else base + season
    steps = np.arange(1, horizon)
    seasonal_hit = (steps % period == 0)[None, :] * gamma[:, None]
    coefficients = alpha[:, None] * (1.0 + beta[:, None] * sums[:, :-1]) + seasonal_hit
    growth = np.concatenate(
        [np.zeros((panel.n, 1)), np.cumsum(coefficients**2, axis=1)], axis=1
    )
    std = sigma[:, None] * np.sqrt(1.0 + growth)
    if multiplicative:
        # sigma is on the data scale; relative spread follows the seasonal factor.
        std = std * season / np.maximum(season.mean(axis=1, keepdims=True), 1e-12)
    return ModelForecast(np.nan_to_num(point), np.nan_to_num(std))
