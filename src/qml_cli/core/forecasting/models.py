"""The model family and the seasonal adjustment that the non-seasonal models share.

`prepare` tests each row for seasonality and divides (or subtracts) classical seasonal
indices; the non-seasonal models fit the adjusted series and their forecasts are
re-seasonalised. Seasonal naive and Holt-Winters fit the raw series. `applicable`
marks the rows each model may fit, so that no multiplicative model fits a zero or a
negative value and no seasonal model fits a series that failed the seasonal test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qml_cli.core.forecasting import holt_winters, simple, theta
from qml_cli.core.forecasting.ets import ModelForecast, forecast_smoothing
from qml_cli.core.forecasting.panel import Panel
from qml_cli.core.forecasting.seasonal import (
    phase_factors,
    seasonal_indices,
    seasonal_test,
)

INTERMITTENT_ZERO_SHARE = 0.3  # rows with at least this share of zeros count as sparse
MAX_HOLT_WINTERS_PERIOD = 24  # longer seasons only get seasonal adjustment
CHUNK_ROWS = 1024


@dataclass(frozen=True)
class Prepared:
    """A panel with its seasonal adjustment: factors are (n, width + horizon)."""

    raw: Panel
    adjusted: Panel
    factors: np.ndarray
    multiplicative: np.ndarray
    seasonal: np.ndarray
    period: int
    horizon: int

    def subset(self, rows: np.ndarray) -> Prepared:
        """Return the preparation restricted to `rows` (a boolean mask or indices)."""
        return Prepared(
            Panel(self.raw.values[rows], self.raw.start[rows]),
            Panel(self.adjusted.values[rows], self.adjusted.start[rows]),
            self.factors[rows],
            self.multiplicative[rows],
            self.seasonal[rows],
            self.period,
            self.horizon,
        )

    def reseason(self, forecast: ModelForecast) -> ModelForecast:
        """Put the seasonal pattern back on a forecast of the adjusted series."""
        future = self.factors[:, self.raw.width :]
        mult = self.multiplicative[:, None]
        point = np.where(mult, forecast.point * future, forecast.point + future)
        std = np.where(mult, forecast.std * future, forecast.std)
        return ModelForecast(point, std)


def prepare(panel: Panel, periods: tuple[int, ...], horizon: int) -> Prepared:
    """Test and remove each seasonal period in `periods` (the longest first)."""
    positive = np.nanmin(panel.values, axis=1) > 0
    total = panel.width + horizon
    factors = np.where(positive[:, None], 1.0, 0.0) * np.ones((panel.n, total))
    seasonal = np.zeros(panel.n, dtype=bool)
    adjusted = panel
    for period in sorted(periods, reverse=True):
        found = seasonal_test(adjusted, period)
        if not found.any():
            continue
        indices = seasonal_indices(adjusted, period, positive)
        neutral = np.where(positive, 1.0, 0.0)[:, None]
        indices = np.where(found[:, None], indices, neutral)
        step = phase_factors(indices, np.arange(total))
        factors = np.where(positive[:, None], factors * step, factors + step)
        current = factors[:, : panel.width]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(
                positive[:, None], panel.values / current, panel.values - current
            )
        adjusted = panel.map(values)
        seasonal |= found
    primary = periods[0] if periods else 1
    return Prepared(panel, adjusted, factors, positive, seasonal, primary, horizon)


def _adjusted(function: Callable[[Panel, int], ModelForecast]):
    def run(prepared: Prepared) -> ModelForecast:
        return prepared.reseason(function(prepared.adjusted, prepared.horizon))

    return run


def _seasonal_naive(prepared: Prepared) -> ModelForecast:
    return simple.forecast_seasonal_naive(
        prepared.raw, prepared.horizon, prepared.period
    )


def _holt_winters(multiplicative: bool):
    def run(prepared: Prepared) -> ModelForecast:
        return holt_winters.forecast_holt_winters(
            prepared.raw, prepared.horizon, prepared.period, multiplicative
        )

    return run


MODELS: dict[str, Callable[[Prepared], ModelForecast]] = {
    "naive": lambda p: simple.forecast_naive(p.raw, p.horizon),
    "seasonal_naive": _seasonal_naive,
    "drift": lambda p: simple.forecast_drift(p.raw, p.horizon),
    "ses": _adjusted(lambda panel, h: forecast_smoothing(panel, h, False, False)),
    "holt": _adjusted(lambda panel, h: forecast_smoothing(panel, h, True, False)),
    "damped_holt": _adjusted(lambda panel, h: forecast_smoothing(panel, h, True, True)),
    "holt_winters_additive": _holt_winters(False),
    "holt_winters_multiplicative": _holt_winters(True),
    "theta": _adjusted(theta.forecast_theta),
    "optimized_theta": _adjusted(theta.forecast_optimized_theta),
    "dynamic_optimized_theta": _adjusted(theta.forecast_dynamic_theta),
    "croston": lambda p: simple.forecast_croston(p.raw, p.horizon),
    "tsb": lambda p: simple.forecast_tsb(p.raw, p.horizon),
}

SEASONAL_MODELS = (
    "seasonal_naive",
    "holt_winters_additive",
    "holt_winters_multiplicative",
)
INTERMITTENT_MODELS = ("croston", "tsb")


def applicable(name: str, prepared: Prepared) -> np.ndarray:
    """Return the (n,) mask of rows on which model `name` may be fitted."""
    raw = prepared.raw
    lengths = raw.lengths
    everywhere = np.ones(raw.n, dtype=bool)
    if name in ("naive", "ses"):
        return everywhere
    if name in ("drift", "theta", "optimized_theta", "dynamic_optimized_theta"):
        return lengths >= 3
    if name in ("holt", "damped_holt"):
        return lengths >= 4
    if name == "seasonal_naive":
        return prepared.seasonal & (lengths >= prepared.period)
    if name.startswith("holt_winters"):
        ok = prepared.seasonal & (lengths >= 2 * prepared.period + 2)
        ok &= prepared.period <= MAX_HOLT_WINTERS_PERIOD
        if name.endswith("multiplicative"):
            ok &= np.nanmin(raw.values, axis=1) > 0
        return ok
    if name in INTERMITTENT_MODELS:
        return (simple.zero_share(raw) >= INTERMITTENT_ZERO_SHARE) & (lengths >= 3)
    raise KeyError(name)


def run_models(prepared: Prepared, names: tuple[str, ...]) -> dict[str, ModelForecast]:
    """Fit each named model on the rows where it applies (the other rows are NaN).

    Rows are fitted in chunks of CHUNK_ROWS so that the (rows, grid) work arrays stay
    in cache; the chunk size changes speed only, never results.
    """
    results = {}
    shape = (prepared.raw.n, prepared.horizon)
    for name in names:
        mask = applicable(name, prepared)
        if not mask.any():
            continue
        point, std = np.full(shape, np.nan), np.full(shape, np.nan)
        rows = np.flatnonzero(mask)
        for first in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[first : first + CHUNK_ROWS]
            with np.errstate(all="ignore"):
                output = MODELS[name](prepared.subset(chunk))
            point[chunk], std[chunk] = output.point, output.std
        results[name] = ModelForecast(point, std)
    return results
