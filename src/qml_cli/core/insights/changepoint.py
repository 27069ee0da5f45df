"""Level shifts: PELT (Killick, Fearnhead and Eckley 2012) over piecewise-linear
segments, so a steady trend is not mistaken for a staircase of shifts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Each added segment costs three parameters (change location, intercept, slope):
# the Schwarz criterion in squared-error units is 3 sigma^2 log n per change.
PARAMETERS_PER_CHANGE = 3
MIN_SEGMENT = 8


@dataclass
class Segment:
    """Observed points [start, stop) and their least-squares line over positions."""

    start: int
    stop: int
    intercept: float
    slope: float

    def at(self, position: float) -> float:
        return self.intercept + self.slope * position


class _LineCosts:
    """Squared error of the least-squares line through any run of points, O(1) each
    from prefix sums over centred, scaled data."""

    def __init__(self, positions: np.ndarray, values: np.ndarray) -> None:
        self.shift_u = float(positions.mean())
        self.shift_y = float(np.median(values))
        self.scale_y = float(np.std(values)) or 1.0
        u = positions - self.shift_u
        y = (values - self.shift_y) / self.scale_y
        columns = (np.ones_like(u), u, u * u, y, y * y, u * y)
        self.sums = [np.concatenate(([0.0], np.cumsum(c))) for c in columns]

    def cost(self, starts: np.ndarray, stop: int) -> np.ndarray:
        n, su, suu, sy, syy, suy = (s[stop] - s[starts] for s in self.sums)
        sxx = suu - su * su / n
        sxy = suy - su * sy / n
        explained = np.where(sxx > 1e-12, sxy * sxy / np.maximum(sxx, 1e-12), 0.0)
        sse = syy - sy * sy / n - explained
        return np.maximum(sse, 0.0) * self.scale_y**2


def pelt(
    positions: np.ndarray,
    values: np.ndarray,
    penalty: float,
    min_segment: int = MIN_SEGMENT,
) -> list[int]:
    """Return the change indices (start of each new segment) minimising the total
    squared error of linear segments plus `penalty` per change."""
    n = len(values)
    if n < 2 * min_segment:
        return []
    costs = _LineCosts(positions.astype(float), values.astype(float))
    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    previous = np.zeros(n + 1, dtype=np.int64)
    candidates = np.array([0], dtype=np.int64)
    for stop in range(min_segment, n + 1):
        newest = stop - min_segment
        if newest >= min_segment:
            candidates = np.append(candidates, newest)
        total = best[candidates] + costs.cost(candidates, stop)
        choice = int(np.argmin(total))
        best[stop] = total[choice] + penalty
        previous[stop] = candidates[choice]
        candidates = candidates[total <= best[stop]]
    changes = []
    stop = n
    while stop > 0:
        stop = int(previous[stop])
        if stop > 0:
            changes.append(stop)
    return sorted(changes)


def fit_segments(
    positions: np.ndarray, values: np.ndarray, changes: list[int]
) -> list[Segment]:
    """Fit a least-squares line to each run between changes."""
    bounds = [0, *changes, len(values)]
    segments = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        u, y = positions[start:stop], values[start:stop]
        slope, intercept = np.polyfit(u, y, 1) if np.ptp(u) > 0 else (0.0, y.mean())
        segments.append(Segment(start, stop, float(intercept), float(slope)))
    return segments


def schwarz_penalty(sigma: float, n: int) -> float:
    """Return the per-change penalty 3 sigma^2 log n."""
    return PARAMETERS_PER_CHANGE * sigma * sigma * math.log(max(n, 2))


def lag1_autocorrelation(residuals: np.ndarray) -> float:
    """Return the lag-1 autocorrelation of residuals winsorised at three robust
    standard deviations, so single outliers do not dominate it."""
    centred = residuals - np.median(residuals)
    scale = 1.4826 * np.median(np.abs(centred))
    if scale == 0 or len(centred) < 3:
        return 0.0
    clipped = np.clip(centred, -3 * scale, 3 * scale)
    clipped = clipped - clipped.mean()
    denominator = float(np.dot(clipped, clipped))
    return (
        0.0
        if denominator == 0
        else float(np.dot(clipped[:-1], clipped[1:]) / denominator)
    )


def segment_line(
    positions: np.ndarray, values: np.ndarray, sigma: float, length: int
) -> tuple[np.ndarray, list[Segment], float]:
    """Segment the observed points; return the piecewise line on the grid of
    `length` positions, the segments and the noise scale the penalty used.

    `sigma` is the white-noise scale from first differences; outliers should be
    clipped beforehand. The penalty uses the
    long-run variance sigma^2 (1 + rho) / (1 - rho)^2 with rho the lag-1
    autocorrelation of the first fit's residuals, because autocorrelated noise
    otherwise looks like shifts. Points more than five scales off the first fit are
    """
    if sigma <= 0 or len(values) < 2 * MIN_SEGMENT:
        segments = fit_segments(positions, values, [])
        return _evaluate(segments, positions, np.arange(length)), segments, sigma
    n = len(values)
    segments = fit_segments(
        positions, values, pelt(positions, values, schwarz_penalty(sigma, n))
    )
    fitted = _evaluate(segments, positions, positions)
    rho = min(max(lag1_autocorrelation(values - fitted), 0.0), 0.9)
    scale = sigma * math.sqrt(1.0 + rho) / (1.0 - rho)
    segments = fit_segments(
        positions, values, pelt(positions, values, schwarz_penalty(scale, n))
    )
    return _evaluate(segments, positions, np.arange(length)), segments, scale


def _evaluate(
    segments: list[Segment], positions: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """Evaluate each segment's line over the grid span it covers (a gap between two
    segments belongs to the later one)."""
    out = np.empty(len(grid), dtype=float)
    for number, segment in enumerate(segments):
        low = -np.inf if number == 0 else positions[segment.start]
        mask = grid >= low
        out[mask] = segment.intercept + segment.slope * grid[mask]
    return out


@dataclass
class Shift:
    """A tested level shift at observed index `index` (first point after it)."""

    index: int
    before: float  # level of the earlier segment at its last point
    after: float  # level of the later segment at its first point
    jump: float  # difference of the two lines at the later segment's first point
    z: float
    p_value: float  # two-sided, Bonferroni-corrected over the candidate locations


def test_shift(
    positions: np.ndarray, left: Segment, right: Segment, sigma: float, candidates: int
) -> Shift:
    """Test the jump between two adjacent segments: the two lines evaluated at the
    later segment's first position, each with its prediction variance."""
    from scipy import stats

    at = float(positions[right.start])
    variance = 0.0
    for segment in (left, right):
        u = positions[segment.start : segment.stop].astype(float)
        sxx = float(np.sum((u - u.mean()) ** 2))
        leverage = (at - u.mean()) ** 2 / sxx if sxx > 0 else 0.0
        variance += 1.0 / len(u) + leverage
    jump = right.at(at) - left.at(at)
    if sigma > 0:
        z = jump / (sigma * math.sqrt(variance))
    else:
        z = math.copysign(math.inf, jump) if jump else 0.0
    p_value = min(1.0, 2.0 * float(stats.norm.sf(abs(z))) * max(candidates, 1))
    before = left.at(float(positions[left.stop - 1]))
    return Shift(right.start, before, right.at(at), jump, z, p_value)


def best_single_split(positions: np.ndarray, values: np.ndarray) -> list[Segment]:
    """Return the two segments of the single split with the least squared error."""
    n = len(values)
    costs = _LineCosts(positions.astype(float), values.astype(float))
    splits = np.arange(MIN_SEGMENT, n - MIN_SEGMENT + 1)
    total = [
        costs.cost(np.array([0]), int(s))[0] + costs.cost(np.array([int(s)]), n)[0]
        for s in splits
    ]
    return fit_segments(positions, values, [int(splits[int(np.argmin(total))])])
