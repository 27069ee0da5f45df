"""Change-point findings: the level shifts of the segmentation that pass their
test, or the statement that the level did not shift."""

from __future__ import annotations

import numpy as np

from qml_cli.core.insights.changepoint import (
    MIN_SEGMENT,
    Shift,
    best_single_split,
    test_shift,
)
from qml_cli.core.insights.decompose import Decomposition
from qml_cli.core.insights.finding import (
    ALPHA,
    Finding,
    describe_change,
    percent_of_level,
)
from qml_cli.core.insights.series import Series

# A significant shift smaller than this share of the level is not reported.
MIN_SHIFT_PERCENT = 1.0


def detect_shifts(
    series: Series, parts: Decomposition
) -> tuple[list[Shift], Shift | None]:
    """Return the significant shifts and, when there is none, the strongest
    rejected candidate (None when the series is too short to split or has no
    noise to test against)."""
    positions = parts.positions
    n = len(positions)
    if n < 2 * MIN_SEGMENT or parts.noise <= 0:
        return [], None
    candidates = n - 2 * MIN_SEGMENT + 1
    shifts = [
        test_shift(positions, left, right, parts.noise, candidates)
        for left, right in zip(parts.segments[:-1], parts.segments[1:], strict=True)
    ]
    accepted = [shift for shift in shifts if shift.p_value < ALPHA]
    if accepted:
        return accepted, None
    if shifts:
        return [], min(shifts, key=lambda shift: shift.p_value)
    adjusted = parts.deseasonalised[series.observed]
    left, right = best_single_split(positions, adjusted)
    return [], test_shift(positions, left, right, parts.noise, candidates)


def shift_findings(
    series: Series, parts: Decomposition, level: float, spread: float
) -> list[Finding]:
    """Return a finding per material level shift, or one `detected=False` finding
    stating that the level did not shift."""
    if len(parts.positions) < 2 * MIN_SEGMENT:
        return []
    shifts, strongest = detect_shifts(series, parts)
    material = [
        shift
        for shift in shifts
        if (pct := percent_of_level(shift.jump, shift.before, spread)) is None
        or abs(pct) >= MIN_SHIFT_PERCENT
    ]
    if material:
        return [_shift_finding(series, parts, shift, spread) for shift in material]
    return [_no_shift_finding(series, parts, strongest, level)]


def _when(series: Series, parts: Decomposition, index: int) -> str:
    return series.label(int(parts.positions[index]))


def shift_offsets(parts: Decomposition, shifts: list[Shift]) -> np.ndarray:
    """Return, per observed point, the sum of the jumps of the shifts before it, so
    that subtracting it leaves the trend without its level shifts."""
    offsets = np.zeros(len(parts.positions))
    for shift in shifts:
        offsets[shift.index :] += shift.jump
    return offsets


def _shift_finding(
    series: Series, parts: Decomposition, shift: Shift, spread: float
) -> Finding:
    when = _when(series, parts, shift.index)
    change = describe_change(shift.jump, shift.before, spread)
    direction = "up" if shift.jump > 0 else "down"
    message = (
        f"From {when} the level shifted {direction} from {shift.before:.4g} "
        f"to {shift.after:.4g} ({change}); a shift this large by chance has "
        f"p = {shift.p_value:.2g} after correcting for every possible date."
    )
    recency = (parts.positions[shift.index] + 1) / len(series.values)
    size = min(1.0, abs(shift.jump) / (4 * parts.noise)) if parts.noise > 0 else 1.0
    return Finding(
        type="changepoint",
        key=f"changepoint:{when}",
        title=f"Level shifted {direction} {change} from {when}",
        message=message,
        confidence=1.0 - shift.p_value,
        relevance=(0.4 + 0.6 * size) * (0.7 + 0.3 * recency),
        evidence={
            "timestamp": when,
            "before": shift.before,
            "after": shift.after,
            "jump": shift.jump,
            "percent": percent_of_level(shift.jump, shift.before, spread),
            "z": shift.z,
            "p_value": shift.p_value,
            "index": int(parts.positions[shift.index]),
        },
    )


def _no_shift_finding(
    series: Series, parts: Decomposition, strongest: Shift | None, level: float
) -> Finding:
    """State that the level did not shift. Its confidence is the corrected p-value of
    the strongest candidate: near 1 when no date comes close to a shift."""
    p_value = strongest.p_value if strongest is not None else 1.0
    candidate = _when(series, parts, strongest.index) if strongest is not None else None
    message = (
        "The level did not shift in the window: the strongest candidate "
        f"({candidate}) has p = {p_value:.2g} after correcting for every "
        "possible date."
        if candidate
        else "The level did not shift in the window."
    )
    return Finding(
        type="changepoint",
        key="changepoint:none",
        title="No level shift",
        message=message,
        confidence=p_value,
        relevance=0.0,
        detected=False,
        evidence={
            "changes": 0,
            "strongest_candidate": candidate,
            "strongest_p_value": p_value,
            "level": float(np.round(level, 12)),
        },
    )
