"""Exponential smoothing without seasonality (SES, Holt, damped Holt), vectorised.

Each model is fitted to every row of a panel at once by grid search over the
smoothing parameters (one pass over time evaluates every grid point for every row),
then a finer grid around each row's best point. The error form is additive:
yhat = l + phi*b, l' = yhat + alpha*e, b' = phi*b + alpha*beta*e, so beta is the
Holt trend weight. Forecast variance follows the class-1 ETS formula
sigma^2 * (1 + sum_{j<h} c_j^2) with c_j = alpha * (1 + beta * (phi + ... + phi^j)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qml_cli.core.forecasting.panel import Panel

ALPHAS = np.array([0.02, 0.06, 0.12, 0.2, 0.3, 0.45, 0.65, 0.9])
BETAS = np.array([0.01, 0.05, 0.15, 0.3])
PHIS = np.array([0.82, 0.92, 0.98])
HEAD = 10  # observations used to initialise the level and trend


@dataclass(frozen=True)
class ModelForecast:
    """Point forecasts and model standard deviations, both (n, horizon)."""

    point: np.ndarray
    std: np.ndarray


def initial_states(panel: Panel, trend: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return the level and trend before each row's first value (least squares on the
    first observations)."""
    head, valid = panel.head(HEAD)
    weights = valid.astype(float)
    count = weights.sum(axis=1)
    steps = np.arange(HEAD, dtype=float)[None, :]
    head = np.where(valid, head, 0.0)
    mean_y = (head * weights).sum(axis=1) / count
    if not trend:
        return mean_y, np.zeros(panel.n)
    mean_t = (steps * weights).sum(axis=1) / count
    spread = (((steps - mean_t[:, None]) ** 2) * weights).sum(axis=1)
    cross = ((steps - mean_t[:, None]) * (head - mean_y[:, None]) * weights).sum(axis=1)
    slope = np.where(spread > 0, cross / np.where(spread > 0, spread, 1.0), 0.0)
    intercept = mean_y - slope * mean_t
    return intercept - slope, slope


def run_filter(panel: Panel, alpha, beta, phi, level0, trend0, optimise_initial=True):
    """Run the recursion for grids of parameters (broadcast to (n, G)).

    The one-step errors are linear in the initial level and trend, so the recursion
    carries their derivatives too and the least-squares initial states are solved in
    closed form per grid point (the concentrated likelihood of the ETS literature).
    `level0` and `trend0` are the base states the solution is measured from. With
    `optimise_initial` false they are used as given, at a third of the cost.
    Returns (sse, level, trend, count), each (n, G) except count (n, 1).
    """
    shape = np.broadcast_shapes(
        np.shape(alpha), np.shape(beta), np.shape(phi), (panel.n, 1)
    )
    level = np.broadcast_to(level0[:, None], shape).copy()
    trend = np.broadcast_to(trend0[:, None], shape).copy()
    # Derivatives of the states by initial state k (0 the level, 1 the trend).
    d_level = [np.ones(shape), np.zeros(shape)]
    d_trend = [np.zeros(shape), np.ones(shape)]
    sums = {key: np.zeros(shape) for key in ("rr", "r0", "r1", "00", "01", "11")}
    alpha_beta = alpha * beta
    filled = panel.filled(0.0)
    for column in range(int(panel.start.min()), panel.width):
        active = (panel.start <= column)[:, None]
        y = filled[:, column : column + 1]
        forecast = level + phi * trend
        error = np.where(active, y - forecast, 0.0)
        if not optimise_initial:
            sums["rr"] += error * error
            level = np.where(active, forecast + alpha * error, level)
            trend = np.where(active, phi * trend + alpha_beta * error, trend)
            continue
        slopes = [np.where(active, d_level[k] + phi * d_trend[k], 0.0) for k in (0, 1)]
        sums["rr"] += error * error
        sums["r0"] += error * slopes[0]
        sums["r1"] += error * slopes[1]
        sums["00"] += slopes[0] * slopes[0]
        sums["01"] += slopes[0] * slopes[1]
        sums["11"] += slopes[1] * slopes[1]
        level = np.where(active, forecast + alpha * error, level)
        trend = np.where(active, phi * trend + alpha_beta * error, trend)
        for k in (0, 1):
            # de/dx0 = -slope, so the states move by slope - alpha * slope.
            d_level[k] = np.where(active, slopes[k] * (1.0 - alpha), d_level[k])
            d_trend[k] = np.where(
                active, phi * d_trend[k] - alpha_beta * slopes[k], d_trend[k]
            )
    if not optimise_initial:
        return sums["rr"], level, trend, panel.lengths[:, None].astype(float)
    shift0, shift1, sse = _solve_initial(sums, has_trend=np.any(beta != 0))
    level = level + shift0 * d_level[0] + shift1 * d_level[1]
    trend = trend + shift0 * d_trend[0] + shift1 * d_trend[1]
    return sse, level, trend, panel.lengths[:, None].astype(float)


def _solve_initial(sums, has_trend: bool):
    """Solve min_x sum (r_t - s_t . x)^2 for the initial-state shift x (1 or 2 dims)."""
    ridge = 1e-9 * (1.0 + sums["00"] + sums["11"])
    if not has_trend:
        shift0 = sums["r0"] / (sums["00"] + ridge)
        sse = np.maximum(sums["rr"] - shift0 * sums["r0"], 0.0)
        return shift0, np.zeros_like(shift0), sse
    a, b, c = sums["00"] + ridge, sums["01"], sums["11"] + ridge
    determinant = a * c - b * b
    determinant = np.where(np.abs(determinant) > 1e-12 * a * c, determinant, np.inf)
    shift0 = (c * sums["r0"] - b * sums["r1"]) / determinant
    shift1 = (a * sums["r1"] - b * sums["r0"]) / determinant
    sse = sums["rr"] - shift0 * sums["r0"] - shift1 * sums["r1"]
    return shift0, shift1, np.maximum(sse, 0.0)


def _grid(trend: bool, damped: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not trend:
        return ALPHAS, np.zeros_like(ALPHAS), np.ones_like(ALPHAS)
    phis = PHIS if damped else np.array([1.0])
    grid = np.array(np.meshgrid(ALPHAS, BETAS, phis, indexing="ij")).reshape(3, -1)
    return grid[0], grid[1], grid[2]


def _refine(best: np.ndarray, step: float, low: float, high: float) -> np.ndarray:
    """Return (n, 3) candidate values around each row's best value."""
    offsets = np.array([-step, 0.0, step])
    return np.clip(best[:, None] + offsets[None, :], low, high)


def _pick(values: tuple[np.ndarray, ...], sse: np.ndarray) -> tuple[np.ndarray, ...]:
    rows = np.arange(sse.shape[0])
    best = np.argmin(sse, axis=1)
    return tuple(np.broadcast_to(v, sse.shape)[rows, best] for v in values)


def fit_smoothing(panel: Panel, trend: bool, damped: bool):
    """Fit one member of the family to every row; return (alpha, beta, phi, level,
    trend, sigma), each (n,)."""
    level0, trend0 = initial_states(panel, trend)
    alpha, beta, phi = (g[None, :] for g in _grid(trend, damped))
    sse, _, _, _ = run_filter(panel, alpha, beta, phi, level0, trend0, False)
    best = _pick((alpha, beta, phi), sse)

    # Second pass: a finer grid around each row's best point.
    fine_a = _refine(best[0], 0.03, 0.005, 0.999)
    if trend:
        fine_b = _refine(best[1], 0.02, 0.001, 0.999)
        fine_p = _refine(best[2], 0.02, 0.8, 0.98) if damped else np.ones_like(fine_a)
        mesh = np.stack(
            np.broadcast_arrays(
                fine_a[:, :, None, None],
                fine_b[:, None, :, None],
                fine_p[:, None, None, :],
            )
        )
        alpha, beta, phi = (m.reshape(panel.n, -1) for m in mesh)
    else:
        alpha, beta, phi = fine_a, np.zeros_like(fine_a), np.ones_like(fine_a)
    sse, level, slope, count = run_filter(panel, alpha, beta, phi, level0, trend0)
    alpha, beta, phi, level, slope, sse = _pick(
        (alpha, beta, phi, level, slope, sse), sse
    )
    dof = np.maximum(count[:, 0] - (1 + 2 * trend + damped), 1.0)
    sigma = np.sqrt(sse / dof)
    return alpha, beta, phi, level, slope, sigma


def damped_sums(phi: np.ndarray, horizon: int) -> np.ndarray:
    """Return phi + phi^2 + ... + phi^h for h = 1..horizon, shape (n, horizon)."""
    powers = phi[:, None] ** np.arange(1, horizon + 1)[None, :]
    return np.cumsum(powers, axis=1)


def forecast_smoothing(
    panel: Panel, horizon: int, trend: bool, damped: bool
) -> ModelForecast:
    """Fit and forecast SES (no trend), Holt (trend) or damped Holt for every row."""
    alpha, beta, phi, level, slope, sigma = fit_smoothing(panel, trend, damped)
    sums = damped_sums(phi, horizon)
    point = level[:, None] + sums * slope[:, None]
    # c_j for j = 1..h-1 uses the damped sum up to j.
    coefficients = alpha[:, None] * (1.0 + beta[:, None] * sums[:, :-1])
    growth = np.concatenate(
        [np.zeros((panel.n, 1)), np.cumsum(coefficients**2, axis=1)], axis=1
    )
    std = sigma[:, None] * np.sqrt(1.0 + growth)
    return ModelForecast(point, std)
