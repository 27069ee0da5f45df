"""Input checks for the public entry points: each error names the value and the fix."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np

from qml_cli.core.forecasting.calendar import FREQUENCIES, MISSING_POLICIES, as_date
from qml_cli.errors import InvalidInput


def check_series(
    timestamps: Sequence, values: Sequence[float]
) -> tuple[list[dt.date], np.ndarray]:
    """Return dates and float values; raise InvalidInput on any defect."""
    if len(timestamps) != len(values):
        raise InvalidInput(
            f"got {len(timestamps)} timestamps and {len(values)} values.",
            hint="Pass one value for each timestamp.",
        )
    if len(values) == 0:
        raise InvalidInput("the series is empty.", hint="Import data points first.")
    dates = []
    for position, stamp in enumerate(timestamps):
        if not isinstance(stamp, dt.date):
            raise InvalidInput(
                f"timestamp {stamp!r} at position {position} is not a date.",
                hint="Pass datetime.date or datetime.datetime values.",
            )
        dates.append(as_date(stamp))
    numbers = np.empty(len(values))
    for position, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"value {value!r} at position {position} is not a number.",
                hint="Pass numeric values.",
            ) from None
        if not math.isfinite(number):
            raise InvalidInput(
                f"value {value!r} at {dates[position]} is not finite.",
                hint="Remove or replace NaN and infinite values.",
            )
        numbers[position] = number
    for position in range(1, len(timestamps)):
        if timestamps[position] == timestamps[position - 1]:
            raise InvalidInput(
                f"duplicate timestamp {timestamps[position]}.",
                hint="Keep one value per timestamp.",
            )
        if timestamps[position] < timestamps[position - 1]:
            raise InvalidInput(
                f"timestamps are not sorted: {timestamps[position]} follows "
                f"{timestamps[position - 1]}.",
                hint="Sort the series by time.",
            )
    return dates, numbers


def check_options(
    horizon: int, levels: Sequence[float], missing: str | None, frequency: str | None
) -> tuple[float, ...]:
    """Validate the options; return the levels as floats."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise InvalidInput(
            f"invalid horizon {horizon!r}.",
            hint="Pass a whole number of periods, at least 1.",
        )
    checked = []
    for level in levels:
        if not isinstance(level, int | float) or not 0 < float(level) < 100:
            raise InvalidInput(
                f"invalid interval level {level!r}.",
                hint="Pass levels in percent, strictly between 0 and 100.",
            )
        checked.append(float(level))
    if missing is not None and missing not in MISSING_POLICIES:
        raise InvalidInput(
            f"invalid missing-value policy {missing!r}.",
            hint=f"Use one of: {', '.join(MISSING_POLICIES)}.",
        )
    if frequency is not None and frequency not in FREQUENCIES:
        raise InvalidInput(
            f"invalid frequency {frequency!r}.",
            hint=f"Use one of: {', '.join(FREQUENCIES)}.",
        )
    return tuple(checked)
