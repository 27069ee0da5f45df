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
    for column in range(int(panel.start.min()), panel.width):
        active = (panel.start <= column)[:, None]
        y = np.nan_to_num(panel.values[:, column : column + 1])
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
