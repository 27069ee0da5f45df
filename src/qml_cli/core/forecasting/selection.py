"""Rolling-origin cross-validation of every candidate model, vectorised over a panel.

Origins sit at the end of the training data minus horizon + w * step for w = 0..W-1.
At each origin the models are refitted on the data before it (seasonal test and
indices included), so no information from the evaluated window leaks into the fit.
A model that does not apply at an origin (too short, no seasonality yet) leaves NaN
errors there, and the scores average over the origins that remain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qml_cli.core.forecasting.ets import ModelForecast
from qml_cli.core.forecasting.models import prepare, run_models
from qml_cli.core.forecasting.panel import Panel

MIN_TRAIN = 4  # a row needs this many observations before an origin to be evaluated


@dataclass(frozen=True)
class CrossValidation:
    """Errors (actual - forecast) and stds by model, each (n, windows, horizon)."""

    errors: dict[str, np.ndarray]
    stds: dict[str, np.ndarray]
    actuals: np.ndarray
    scale: np.ndarray
    horizon: int

    def smape(self, name: str) -> np.ndarray:
        """Return each row's symmetric MAPE in percent (NaN when never evaluated)."""
        return symmetric_mape(self.errors[name], self.actuals)

    def mase(self, name: str) -> np.ndarray:
        """Return each row's mean absolute error over its in-sample scale."""
        return mean_absolute_scaled(self.errors[name], self.scale)


def symmetric_mape(errors: np.ndarray, actuals: np.ndarray) -> np.ndarray:
    """Return mean 200|e| / (|a| + |f|) over the last axes (0 where both are 0)."""
    forecasts = actuals - errors
    denominator = np.abs(actuals) + np.abs(forecasts)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denominator > 0, 200.0 * np.abs(errors) / denominator, 0.0)
    terms = np.where(np.isfinite(errors), terms, np.nan)
    return _row_mean(terms)


def mean_absolute_scaled(errors: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Return mean |e| / scale per row; scale 0 (a constant history) counts as 1."""
    safe = np.where(scale > 0, scale, 1.0)
    return _row_mean(np.abs(errors)) / safe


def _row_mean(terms: np.ndarray) -> np.ndarray:
    flat = terms.reshape(terms.shape[0], -1)
    present = np.isfinite(flat)
    count = present.sum(axis=1)
    total = np.where(present, flat, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def insample_scale(panel: Panel, period: int) -> np.ndarray:
    """Return the in-sample MAE of seasonal naive (of naive when too short)."""
    lag = period if period > 1 else 1
    scale = _lag_mae(panel, lag)
    short = panel.lengths <= lag
    if short.any():
        scale = np.where(short, _lag_mae(panel, 1), scale)
    # A scale at rounding level (an exact season) counts as zero, so MASE is the MAE.
    level = np.nanmean(np.abs(panel.values), axis=1)
    return np.where(scale > 1e-9 * level, scale, 0.0)


def _lag_mae(panel: Panel, lag: int) -> np.ndarray:
    if lag >= panel.width:
        return np.zeros(panel.n)
    diffs = np.abs(panel.values[:, lag:] - panel.values[:, :-lag])
    present = np.isfinite(diffs)
    return np.where(present, diffs, 0.0).sum(axis=1) / np.maximum(
        present.sum(axis=1), 1
    )


def shifted(panel: Panel, end: int, rows: np.ndarray) -> Panel:
    """Return the selected rows cut before column `end`, right-aligned again."""
    offset = panel.width - end
    values = np.full((int(rows.sum()), panel.width), np.nan)
    values[:, offset:] = panel.values[rows, :end]
    return Panel(values, panel.start[rows] + offset)


def evaluate(
    panel: Panel,
    periods: tuple[int, ...],
    horizon: int,
    cv_horizon: int,
    names: tuple[str, ...],
    windows: int,
    step: int,
) -> tuple[CrossValidation, dict[str, ModelForecast]]:
    """Cross-validate every model and fit it on the whole panel, in one stacked run.

    The training panels of all origins and the full panel are stacked as rows of one
    panel, so each model runs once however many origins there are.
    """
    blocks, owners = [panel], [(None, np.ones(panel.n, dtype=bool))]
    for window in range(windows):
        end = panel.width - cv_horizon - window * step
        valid = (end - panel.start) >= MIN_TRAIN
        if end < MIN_TRAIN or not valid.any():
            break
        blocks.append(shifted(panel, end, valid))
        owners.append((window, valid))
    stacked = Panel(
        np.concatenate([block.values for block in blocks]),
        np.concatenate([block.start for block in blocks]),
    )
    fitted = run_models(prepare(stacked, periods, max(horizon, cv_horizon)), names)

    final = {}
    errors = {name: np.full((panel.n, windows, cv_horizon), np.nan) for name in fitted}
    stds = {name: np.full((panel.n, windows, cv_horizon), np.nan) for name in fitted}
    actuals = np.full((panel.n, windows, cv_horizon), np.nan)
    for name, output in fitted.items():
        final[name] = ModelForecast(
            output.point[: panel.n, :horizon], output.std[: panel.n, :horizon]
        )
    first = panel.n
    for window, valid in owners[1:]:
        end = panel.width - cv_horizon - window * step
        rows = slice(first, first + int(valid.sum()))
        observed = panel.values[valid, end : end + cv_horizon]
        actuals[valid, window] = observed
        for name, output in fitted.items():
            errors[name][valid, window] = observed - output.point[rows, :cv_horizon]
            stds[name][valid, window] = output.std[rows, :cv_horizon]
        first = rows.stop
    scale = insample_scale(panel, periods[0] if periods else 1)
    return CrossValidation(errors, stds, actuals, scale, cv_horizon), final
