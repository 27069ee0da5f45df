"""A panel of series aligned on their last observation, the shape every model fits.

Row i holds series i in columns `start[i]:width`, with NaN before its first value, so
that column `width + h - 1` is step h ahead for every row and column `t % m` is one
seasonal phase for every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Panel:
    """Right-aligned series: `values` (n, width) with NaN padding, `start` (n,) ints."""

    values: np.ndarray
    start: np.ndarray

    @classmethod
    def from_series(cls, series: Sequence[Sequence[float]]) -> Panel:
        """Build a panel from series of any lengths (each at least one value)."""
        arrays = [np.asarray(values, dtype=float) for values in series]
        width = max(len(values) for values in arrays)
        table = np.full((len(arrays), width), np.nan)
        start = np.empty(len(arrays), dtype=int)
        for row, values in enumerate(arrays):
            start[row] = width - len(values)
            table[row, start[row] :] = values
        return cls(table, start)

    @property
    def n(self) -> int:
        return self.values.shape[0]

    @property
    def width(self) -> int:
        return self.values.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return self.width - self.start

    def observed(self) -> np.ndarray:
        """Return the (n, width) mask of columns that hold a value."""
        return np.arange(self.width)[None, :] >= self.start[:, None]

    def filled(self, fill: float | np.ndarray = 0.0) -> np.ndarray:
        """Return the values with padding replaced by `fill` (scalar or (n,) array)."""
        fill_table = np.broadcast_to(
            np.asarray(fill, dtype=float).reshape(-1, 1), self.values.shape
        )
        return np.where(self.observed(), self.values, fill_table)

    def truncate(self, end: int) -> Panel:
        """Return the panel cut before column `end`; rows left empty keep one value."""
        start = np.minimum(self.start, end - 1)
        values = self.values[:, :end].copy()
        empty = self.start >= end
        if empty.any():
            values[empty, end - 1] = self.first()[empty]
        return Panel(values, start)

    def first(self) -> np.ndarray:
        """Return each row's first observed value."""
        return self.values[np.arange(self.n), self.start]

    def last(self) -> np.ndarray:
        """Return each row's last value."""
        return self.values[:, -1]

    def map(self, values: np.ndarray) -> Panel:
        """Return a panel with the same layout and new values (padding kept NaN)."""
        return Panel(np.where(self.observed(), values, np.nan), self.start)

    def head(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the first `count` values of each row (n, count) and their mask."""
        columns = self.start[:, None] + np.arange(count)[None, :]
        valid = columns < self.width
        columns = np.minimum(columns, self.width - 1)
        return self.values[np.arange(self.n)[:, None], columns], valid

    def tail_mean(self, count: int) -> np.ndarray:
        """Return the mean of each row's last `count` values (fewer when shorter)."""
        window = self.values[:, -count:]
        return np.nanmean(window, axis=1)
