"""The `Forecast` result returned by `forecast_metric`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _number(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class Forecast:
    """A forecast of one metric: point values and intervals for each future period.

    `intervals` maps a level in percent to (lower, upper) arrays; `cv_error` holds
    the chosen model's cross-validated "smape" (percent) and "mase"; `candidates`
    maps each model tried to its {"smape", "mase"} scores.
    """

    dates: list[dt.date]
    point: np.ndarray
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]
    model: str
    reason: str
    cv_error: dict[str, float | None]
    candidates: dict[str, dict[str, float | None]]
    season_length: int
    frequency: str
    n_observations: int
    missing_policy: str
    ensemble: tuple[str, ...] = ()
    selection: dict[str, Any] | None = None
    metric_type: str = "sales_forecast"
    gaps_filled: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready document (dates as ISO strings, levels as text keys)."""
        return {
            "type": self.metric_type,
            "model": self.model,
            "reason": self.reason,
            "frequency": self.frequency,
            "season_length": self.season_length,
            "n_observations": self.n_observations,
            "missing_policy": self.missing_policy,
            "gaps_filled": self.gaps_filled,
            "horizon": len(self.dates),
            "dates": [day.isoformat() for day in self.dates],
            "point": [_number(v) for v in self.point],
            "intervals": {
                f"{level:g}": {
                    "lower": [_number(v) for v in lower],
                    "upper": [_number(v) for v in upper],
                }
                for level, (lower, upper) in self.intervals.items()
            },
            "cv_error": dict(self.cv_error),
            "candidates": {
                name: dict(scores) for name, scores in self.candidates.items()
            },
            "ensemble": list(self.ensemble),
            "selection": self.selection,
            "notes": list(self.notes),
        }
