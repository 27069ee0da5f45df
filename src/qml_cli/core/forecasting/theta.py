"""The Theta method and the optimised Theta method, vectorised over a panel.

Theta (Assimakopoulos and Nikolopoulos, 2000) is computed in the Hyndman and Billah
(2003) form: SES plus half the least-squares slope b, ses + b/2 * ((h-1) + (1 -
(1-alpha)^T)/alpha). The optimised Theta model (Fiorucci et al., 2016) combines the
linear trend L = A + B t with weight 1/theta and SES of the theta line
Z = theta*y + (1-theta)*L with weight 1 - 1/theta, choosing theta and alpha by in-sample
mean squared one-step error.
"""

from __future__ import annotations

import numpy as np

from qml_cli.core.forecasting.ets import ModelForecast, fit_smoothing
from qml_cli.core.forecasting.panel import Panel

THETAS = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 4.0])
ALPHAS = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 0.99])


def linear_trend(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Return the least-squares intercept A (at column 0) and slope B of each row."""
    mask = panel.observed()
    columns = np.broadcast_to(np.arange(panel.width, dtype=float), mask.shape)
    count = mask.sum(axis=1)
    mean_t = np.where(mask, columns, 0.0).sum(axis=1) / count
    mean_y = np.nanmean(panel.values, axis=1)
    dt = np.where(mask, columns - mean_t[:, None], 0.0)
    dy = np.where(mask, panel.values - mean_y[:, None], 0.0)
    spread = (dt**2).sum(axis=1)
    slope = np.where(
        spread > 0, (dt * dy).sum(axis=1) / np.where(spread > 0, spread, 1), 0.0
    )
    return mean_y - slope * mean_t, slope


def _ses_std(alpha: np.ndarray, sigma: np.ndarray, horizon: int) -> np.ndarray:
    steps = np.arange(horizon)[None, :]
    return sigma[:, None] * np.sqrt(1.0 + steps * alpha[:, None] ** 2)


def forecast_theta(panel: Panel, horizon: int) -> ModelForecast:
    """Standard Theta forecast (theta = 2) for every row."""
    alpha, _, _, level, _, sigma = fit_smoothing(panel, trend=False, damped=False)
    _, slope = linear_trend(panel)
    steps = np.arange(horizon)[None, :]
    decay = (1.0 - (1.0 - alpha) ** panel.lengths) / alpha
    point = level[:, None] + 0.5 * slope[:, None] * (steps + decay[:, None])
    return ModelForecast(point, _ses_std(alpha, sigma, horizon))


def forecast_optimized_theta(panel: Panel, horizon: int) -> ModelForecast:
    """Optimised Theta forecast: theta and alpha chosen per row from a grid."""
    intercept, slope = linear_trend(panel)
    grid = np.array(np.meshgrid(THETAS, ALPHAS, indexing="ij")).reshape(2, -1)
    theta, alpha = grid[0][None, :], grid[1][None, :]
    head, valid = panel.head(3)
    first_z = np.nanmean(np.where(valid, head, np.nan), axis=1)[:, None] * np.ones_like(
        theta
    )
    level = first_z.copy()
    sse = np.zeros((panel.n, theta.shape[1]))
    filled = panel.filled(0.0)
    for column in range(int(panel.start.min()), panel.width):
        active = (panel.start <= column)[:, None]
        y = filled[:, column : column + 1]
        line = intercept[:, None] + slope[:, None] * column
        fitted = line / theta + (1.0 - 1.0 / theta) * level
        sse += np.where(active, (y - fitted) ** 2, 0.0)
        z = theta * y + (1.0 - theta) * line
        level = np.where(active, level + alpha * (z - level), level)
    rows = np.arange(panel.n)
    best = np.argmin(sse, axis=1)
    theta, alpha, level = theta[0, best], alpha[0, best], level[rows, best]
    columns = panel.width + np.arange(horizon)[None, :]
    line = intercept[:, None] + slope[:, None] * columns
    weight = 1.0 / theta[:, None]
    point = weight * line + (1.0 - weight) * level[:, None]
    sigma = np.sqrt(sse[rows, best] / np.maximum(panel.lengths - 3, 1))
    std = _ses_std(alpha * (1.0 - 1.0 / theta) * theta, sigma, horizon)
    return ModelForecast(point, std)


DYNAMIC_THETAS = np.array([1.0, 1.4, 1.8, 2.0, 2.3, 2.7, 3.2, 4.0])
DYNAMIC_ALPHAS = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 0.95])


def _dynamic_trend(panel: Panel):
    """Return the running mean, intercept A_t and slope B_t of each row (n, width).

    Least squares on y_1..y_t updated recursively, with t counted from each row's
    first value: B_t = ((t-2) B_{t-1} + 6 (y_t - mean_{t-1}) / t) / (t+1).
    """
    mean = np.zeros(panel.values.shape)
    intercept = np.zeros_like(mean)
    slope = np.zeros_like(mean)
    running_mean = np.zeros(panel.n)
    running_slope = np.zeros(panel.n)
    filled = panel.filled(0.0)
    for column in range(int(panel.start.min()), panel.width):
        t = (column - panel.start + 1).astype(float)
        active = t >= 1
        y = filled[:, column]
        safe_t = np.maximum(t, 1.0)
        new_slope = (
            (safe_t - 2) * running_slope + 6.0 * (y - running_mean) / safe_t
        ) / (safe_t + 1)
        new_slope = np.where(t <= 1, 0.0, new_slope)
        new_mean = running_mean + (y - running_mean) / safe_t
        running_slope = np.where(active, new_slope, running_slope)
        running_mean = np.where(active, new_mean, running_mean)
        mean[:, column] = running_mean
        slope[:, column] = running_slope
        intercept[:, column] = running_mean - (safe_t + 1) / 2.0 * running_slope
    return mean, intercept, slope


def forecast_dynamic_theta(panel: Panel, horizon: int) -> ModelForecast:
    """Dynamic optimised Theta (DOTM): intercept and slope updated at each step."""
    _, intercept, slope = _dynamic_trend(panel)
    grid = np.array(np.meshgrid(DYNAMIC_THETAS, DYNAMIC_ALPHAS, indexing="ij"))
    theta, alpha = (g.reshape(1, -1) for g in grid)
    weight = 1.0 - 1.0 / theta
    level = np.broadcast_to(panel.first()[:, None], (panel.n, theta.shape[1])).copy()
    sse = np.zeros_like(level)
    # The errors are linear in the initial level, so its least-squares value is
    # solved in closed form from these running sums (derivative d of the level).
    derivative = np.ones_like(level)
    cross = np.zeros_like(level)
    square = np.zeros_like(level)
    # decay = (1 - alpha)^(t - 1), advanced once per observed step.
    decay = np.ones_like(level)
    keep = 1.0 - alpha
    filled = panel.filled(0.0)
    for column in range(int(panel.start.min()), panel.width):
        t = (column - panel.start + 1)[:, None]
        active = t >= 1
        counted = t > 1
        y = filled[:, column : column + 1]
        if column > 0:
            rows_a = intercept[:, column - 1 : column]
            rows_b = slope[:, column - 1 : column]
        else:
            rows_a = rows_b = np.zeros((panel.n, 1))
        trend_part = decay * rows_a + (1.0 - decay * keep) / alpha * rows_b
        fitted = level + weight * np.where(counted, trend_part, 0.0)
        error = np.where(counted, y - fitted, 0.0)
        sse += error * error
        cross += np.where(counted, error * derivative, 0.0)
        square += np.where(counted, derivative * derivative, 0.0)
        level = np.where(active, alpha * y + keep * level, level)
        derivative = np.where(active, keep * derivative, derivative)
        decay = np.where(active, keep * decay, decay)
    shift = cross / np.where(square > 1e-12, square, np.inf)
    sse = np.maximum(sse - shift * cross, 0.0)
    level = level + shift * derivative

    rows = np.arange(panel.n)
    best = np.argmin(sse, axis=1)
    theta, alpha, level = theta[0, best], alpha[0, best], level[rows, best]

    n_obs = panel.lengths.astype(float)
    steps = np.arange(horizon)[None, :]
    decay = (1.0 - alpha) ** n_obs
    last_a, last_b = intercept[:, -1], slope[:, -1]
    trend_part = (decay * last_a)[:, None] + (
        steps + ((1.0 - (1.0 - alpha) * decay) / alpha)[:, None]
    ) * last_b[:, None]
    point = level[:, None] + (1.0 - 1.0 / theta)[:, None] * trend_part
    sigma = np.sqrt(sse[rows, best] / np.maximum(n_obs - 3, 1))
    return ModelForecast(point, _ses_std(alpha, sigma, horizon))
