"""Preparation of a metric for analysis: a regular grid, its season and a robust
decomposition into trend, season and residual."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qml_cli.errors import InvalidInput

MIN_POINTS = 4
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY

# Sampling steps recognised from the median spacing of the timestamps, in seconds,
# with the unit that slopes are reported in and the candidate seasonal periods.
STEPS = {
    "hour": (HOUR, "week", 168.0, (24, 168)),
    "day": (DAY, "week", 7.0, (7, 365)),
    "week": (WEEK, "week", 1.0, (52,)),
    "month": (30.4375 * DAY, "month", 1.0, (12,)),
    "year": (365.25 * DAY, "year", 1.0, ()),
}
MAD_TO_SIGMA = 1.4826


@dataclass
class Series:
    """A metric on a regular grid; `values` is NaN where the grid has no point."""

    times: np.ndarray  # datetime64[s], one per grid position
    values: np.ndarray
    step: str  # a key of STEPS, or "irregular"
    rate_unit: str  # the unit slopes are reported per: "week", "month", "year", "step"
    steps_per_unit: float

    @property
    def observed(self) -> np.ndarray:
        return ~np.isnan(self.values)

    @property
    def n_observed(self) -> int:
        return int(self.observed.sum())

    def label(self, index: int) -> str:
        """Format the time of a grid position: a date for daily and coarser steps,
        date and time (UTC) otherwise."""
        stamp = self.times[int(index)].astype("datetime64[s]")
        if self.step in ("day", "week", "month", "year"):
            return str(stamp.astype("datetime64[D]"))
        return str(stamp).replace("T", " ")

    def filled(self) -> np.ndarray:
        """Return the values with gaps filled by linear interpolation."""
        return fill_gaps(self.values)


def to_datetime64(timestamps: Sequence) -> np.ndarray:
    """Convert datetimes (aware ones to UTC), dates or datetime64 values to
    datetime64[s]; raise `InvalidInput` for anything else."""
    out = []
    for stamp in timestamps:
        if isinstance(stamp, np.datetime64):
            out.append(stamp.astype("datetime64[s]"))
            continue
        if isinstance(stamp, dt.datetime):
            if stamp.tzinfo is not None:
                stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
        elif isinstance(stamp, dt.date):
            stamp = dt.datetime(stamp.year, stamp.month, stamp.day)
        else:
            raise InvalidInput(
                f"invalid timestamp {stamp!r}.", hint="Pass datetimes or dates."
            )
        out.append(np.datetime64(stamp, "s"))
    return np.array(out, dtype="datetime64[s]")


def _classify_step(spacing: np.ndarray) -> str:
    """Name the grid step: the step the median spacing matches, else hour or day
    when every spacing is a whole number of them (a daily metric with missing
    days), else irregular."""
    median = float(np.median(spacing))
    for name, (length, *_rest) in STEPS.items():
        if abs(median - length) <= 0.1 * length:
            return name
    for name in ("day", "hour"):
        if np.all(spacing % int(STEPS[name][0]) == 0):
            return name
    return "irregular"


def _grid_positions(times: np.ndarray, step: str, step_seconds: float) -> np.ndarray:
    if step in ("month", "year"):
        years = times.astype("datetime64[Y]").astype(int)
        months = times.astype("datetime64[M]").astype(int)
        index = months - months.min() if step == "month" else years - years.min()
        return index.astype(np.int64)
    seconds = (times - times.min()).astype(np.int64)
    return np.rint(seconds / step_seconds).astype(np.int64)


def prepare(
    timestamps: Sequence, values: Sequence[float], window_days: float | None = None
) -> Series:
    """Put a metric on a regular grid and keep the last `window_days` days.

    Raises `InvalidInput` for mismatched lengths, non-finite values or fewer than
    MIN_POINTS points. Points that fall on the same grid position are averaged.
    """
    times = to_datetime64(timestamps)
    data = np.asarray(values, dtype=float)
    if times.shape != data.shape:
        raise InvalidInput(
            f"got {len(times)} timestamps but {len(data)} values.",
            hint="Pass one value per timestamp.",
        )
    if not np.all(np.isfinite(data)):
        bad = int(np.flatnonzero(~np.isfinite(data))[0])
        raise InvalidInput(
            f"value {data[bad]!r} at {times[bad]} is not a finite number.",
            hint="Remove or correct the point before analysing.",
        )
    order = np.argsort(times, kind="stable")
    times, data = times[order], data[order]
    if window_days is not None and len(times):
        start = times[-1] - np.timedelta64(int(round(window_days * DAY)), "s")
        keep = times > start
        times, data = times[keep], data[keep]
    if len(np.unique(times)) < MIN_POINTS:
        raise InvalidInput(
            f"the metric has {len(np.unique(times))} distinct timestamps "
            f"in the window; at least {MIN_POINTS} are needed.",
            hint="Import more data or widen --window.",
        )
    return _regularise(times, data)


def _regularise(times: np.ndarray, data: np.ndarray) -> Series:
    spacing = np.diff(np.unique(times)).astype(np.int64)
    step = _classify_step(spacing)
    if step == "irregular":
        # NOTE: an irregular series keeps its points in order, one grid position each,
        # so seasons are not searched and rates are per median spacing.
        positions = np.arange(len(times))
        unit, per_unit = "step", 1.0
    else:
        step_seconds, unit, per_unit, _ = STEPS[step]
        positions = _grid_positions(times, step, step_seconds)
    size = int(positions.max()) + 1
    sums = np.bincount(positions, weights=data, minlength=size)
    counts = np.bincount(positions, minlength=size)
    grid_values = np.full(size, np.nan)
    grid_values[counts > 0] = sums[counts > 0] / counts[counts > 0]
    grid_times = _grid_times(times, positions, size, step)
    return Series(grid_times, grid_values, step, unit, per_unit)


def _grid_times(
    times: np.ndarray, positions: np.ndarray, size: int, step: str
) -> np.ndarray:
    if step == "month":
        first = times.min().astype("datetime64[M]")
        return (first + np.arange(size)).astype("datetime64[s]")
    if step == "year":
        first = times.min().astype("datetime64[Y]")
        return (first + np.arange(size)).astype("datetime64[s]")
    if step == "irregular":
        return times[np.unique(positions, return_index=True)[1]]
    seconds = int(STEPS[step][0])
    return times.min() + np.arange(size) * np.timedelta64(seconds, "s")


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Fill NaN by linear interpolation, holding the edge values outside."""
    observed = ~np.isnan(values)
    if observed.all():
        return values.copy()
    index = np.arange(len(values))
    return np.interp(index, index[observed], values[observed])


def robust_scale(values: np.ndarray) -> float:
    """Return the MAD scaled to a normal standard deviation; 0 for constant data."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(values - np.median(values))))


def noise_scale(values: np.ndarray) -> float:
    """Estimate the noise standard deviation from first differences (MAD / sqrt 2),
    which level shifts and slow trends barely affect; falls back to the standard
    deviation of the differences when more than half of them are equal."""
    diffs = np.diff(values[~np.isnan(values)])
    if len(diffs) == 0:
        return 0.0
    scale = robust_scale(diffs) / math.sqrt(2.0)
    if scale == 0.0:
        scale = float(np.std(diffs)) / math.sqrt(2.0)
    return scale
