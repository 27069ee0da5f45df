"""The vectorised engine: select, combine and forecast every row of a panel at once.

Every step (seasonal test, fits, cross-validation, selection, intervals) works on
whole (n, ...) arrays, so fitting a thousand series costs a few hundred NumPy calls
per model, not a thousand optimiser runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qml_cli.core.forecasting.intervals import interval_multipliers, standardised_scores
from qml_cli.core.forecasting.models import MODELS, prepare, run_models
from qml_cli.core.forecasting.panel import Panel
from qml_cli.core.forecasting.selection import CrossValidation, cross_validate

DEFAULT_WINDOWS = 3


@dataclass(frozen=True)
class PanelForecast:
    """Forecasts of every row: arrays are (n, horizon); lists have one item per row."""

    point: np.ndarray
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]
    model: list[str]
    reason: list[str]
    cv_smape: np.ndarray
    cv_mase: np.ndarray
    candidates: dict[str, tuple[np.ndarray, np.ndarray]]
    ensemble: list[tuple[str, ...]] = field(default_factory=list)
    selection: list[dict | None] = field(default_factory=list)


def cv_plan(lengths: np.ndarray, horizon: int) -> tuple[int, int]:
    """Return (cv_horizon, step): the full horizon when the data allow it."""
    shortest = int(lengths.max())
    cv_horizon = max(1, min(horizon, shortest // 3))
    step = max(1, cv_horizon // 3)
    return cv_horizon, step


def forecast_panel(
    panel: Panel,
    horizon: int,
    periods: tuple[int, ...],
    levels: tuple[float, ...] = (80.0, 95.0),
    names: tuple[str, ...] | None = None,
    nonnegative: np.ndarray | bool = False,
    windows: int = DEFAULT_WINDOWS,
) -> PanelForecast:
    """Forecast every row of `panel` `horizon` steps ahead with per-row model choice."""
    names = tuple(MODELS) if names is None else names
    cv_horizon, step = cv_plan(panel.lengths, horizon)
    cv = cross_validate(panel, periods, cv_horizon, names, windows, step)
    final = run_models(prepare(panel, periods, horizon), names)
    available = [name for name in names if name in final]

    smape = np.column_stack([_or_nan(cv, name, "smape", panel.n) for name in available])
    mase = np.column_stack([_or_nan(cv, name, "mase", panel.n) for name in available])
    missing_final = np.column_stack(
        [np.isnan(final[name].point).any(axis=1) for name in available]
    )
    ranking = np.where(np.isfinite(mase) & ~missing_final, mase, np.inf)
    fallback = available.index("naive") if "naive" in available else 0
    best = np.where(
        np.isfinite(ranking).any(axis=1), np.argmin(ranking, axis=1), fallback
    )
    rows = np.arange(panel.n)

    points = np.stack([final[name].point for name in available], axis=1)
    stds = np.stack([final[name].std for name in available], axis=1)
    point, std = points[rows, best], stds[rows, best]
    cv_errors = np.stack([cv.errors[name] for name in available], axis=1)[rows, best]
    cv_stds = np.stack([cv.stds[name] for name in available], axis=1)[rows, best]

    intervals = _intervals(point, std, standardised_scores(cv_errors, cv_stds), levels)
    point, intervals = _apply_floor(point, intervals, nonnegative)
    model = [available[b] for b in best]
    reason = [
        _reason(available[b], mase[r, b], len(available), cv_horizon)
        for r, b in enumerate(best)
    ]
    candidates = {name: (smape[:, k], mase[:, k]) for k, name in enumerate(available)}
    return PanelForecast(
        point, intervals, model, reason, smape[rows, best], mase[rows, best], candidates
    )


def _or_nan(cv: CrossValidation, name: str, metric: str, n: int) -> np.ndarray:
    if name not in cv.errors:
        return np.full(n, np.nan)
    return getattr(cv, metric)(name)


def _intervals(point, std, scores, levels):
    multipliers = interval_multipliers(scores, levels)
    intervals = {}
    for column, level in enumerate(levels):
        half = multipliers[:, column : column + 1] * std
        intervals[level] = (point - half, point + half)
    return intervals


def _apply_floor(point, intervals, nonnegative):
    floor = np.asarray(nonnegative, dtype=bool)
    if not floor.any():
        return point, intervals
    mask = np.broadcast_to(floor.reshape(-1, 1), point.shape)
    point = np.where(mask, np.maximum(point, 0.0), point)
    clipped = {}
    for level, (lower, upper) in intervals.items():
        clipped[level] = (
            np.where(mask, np.maximum(lower, 0.0), lower),
            np.where(mask, np.maximum(upper, 0.0), upper),
        )
    return point, clipped


def _reason(name: str, score: float, count: int, cv_horizon: int) -> str:
    if not np.isfinite(score):
        return f"{name} is the fallback because no candidate could be cross-validated."
    return (
        f"{name} had the lowest cross-validated MASE ({score:.3f}) of {count} "
        f"candidate models at horizon {cv_horizon}."
    )
