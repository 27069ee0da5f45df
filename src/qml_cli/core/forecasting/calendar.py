"""Frequencies, the regular grid of periods, gap filling and season lengths.

A period is identified by an integer ordinal: days since 0001-01-01 for daily data,
that over 7 for weekly, year * 12 + month - 1 for monthly, year * 4 + quarter - 1
for quarterly and the year for yearly data. Dates are period starts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from qml_cli.errors import InvalidInput

FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "yearly")
MISSING_POLICIES = ("zero", "interpolate", "skip")
ZERO_FILL_TYPES = ("sales_forecast", "demand_forecast")
# Median spacing in days below which each frequency is inferred.
_SPACING_LIMITS = (
    (3.5, "daily"),
    (18.0, "weekly"),
    (60.0, "monthly"),
    (200.0, "quarterly"),
)


def as_date(value: dt.date | dt.datetime) -> dt.date:
    """Return the calendar date of a date or datetime (time of day dropped)."""
    return value.date() if isinstance(value, dt.datetime) else value


def infer_frequency(dates: Sequence[dt.date]) -> str:
    """Infer the frequency from the median spacing; a single date counts as daily."""
    if len(dates) < 2:
        return "daily"
    ordinals = np.array([d.toordinal() for d in dates], dtype=float)
    spacing = float(np.median(np.diff(ordinals)))
    for limit, name in _SPACING_LIMITS:
        if spacing < limit:
            return name
    return "yearly"


def period_ordinal(day: dt.date, frequency: str) -> int:
    """Return the ordinal of the period that contains `day`."""
    if frequency == "daily":
        return day.toordinal()
    if frequency == "weekly":
        return (
            day.toordinal() - 1
        ) // 7  # weeks start on Monday (ordinal 1 is a Monday)
    if frequency == "monthly":
        return day.year * 12 + day.month - 1
    if frequency == "quarterly":
        return day.year * 4 + (day.month - 1) // 3
    return day.year


def period_start(ordinal: int, frequency: str) -> dt.date:
    """Return the first day of the period with this ordinal."""
    if frequency == "daily":
        return dt.date.fromordinal(ordinal)
    if frequency == "weekly":
        return dt.date.fromordinal(ordinal * 7 + 1)
    if frequency == "monthly":
        return dt.date(ordinal // 12, ordinal % 12 + 1, 1)
    if frequency == "quarterly":
        return dt.date(ordinal // 4, (ordinal % 4) * 3 + 1, 1)
    return dt.date(ordinal, 1, 1)


def default_missing(metric_type: str) -> str:
    """Return the default gap policy: zero for sales and demand, else interpolate."""
    return "zero" if metric_type in ZERO_FILL_TYPES else "interpolate"


def regularise(
    dates: Sequence[dt.date],
    values: np.ndarray,
    frequency: str,
    missing: str,
    aggregate: str = "sum",
):
    """Place values on the grid of consecutive periods and fill the gaps.

    Several values in one period are summed (`aggregate="sum"`, for flows such as
    sales) or averaged ("mean"). Returns (ordinals, values, gap_count); with the
    `skip` policy the ordinals are those of the observed periods only.
    """
    if missing not in MISSING_POLICIES:
        raise InvalidInput(
            f"invalid missing-value policy {missing!r}.",
            hint=f"Use one of: {', '.join(MISSING_POLICIES)}.",
        )
    keys = np.array([period_ordinal(d, frequency) for d in dates])
    unique, inverse = np.unique(keys, return_inverse=True)
    totals = np.bincount(inverse, weights=values, minlength=len(unique))
    if aggregate == "mean":
        totals = totals / np.bincount(inverse, minlength=len(unique))
    grid = np.arange(unique[0], unique[-1] + 1)
    gaps = len(grid) - len(unique)
    if missing == "skip" or gaps == 0:
        return unique, totals, gaps
    if missing == "zero":
        filled = np.zeros(len(grid))
        filled[unique - unique[0]] = totals
    else:
        filled = np.interp(grid, unique, totals)
    return grid, filled, gaps


def season_lengths(frequency: str, n_periods: int) -> tuple[int, ...]:
    """Return the candidate season lengths, the primary one first.

    Daily data has a weekly season, plus a yearly one of 365 days when it covers two
    years or more; weekly data has a 52-week year from two years on.
    """
    if frequency == "daily":
        # NOTE: the autocorrelation test rarely accepts a smooth 365-day season with
        # only two or three cycles, so most such series keep the weekly season alone.
        return (7, 365) if n_periods >= 730 else (7,)
    if frequency == "weekly":
        return (52,) if n_periods >= 104 else ()
    if frequency == "monthly":
        return (12,)
    if frequency == "quarterly":
        return (4,)
    return ()


def future_dates(last_ordinal: int, frequency: str, horizon: int) -> list[dt.date]:
    """Return the starts of the `horizon` periods after `last_ordinal`."""
    return [
        period_start(last_ordinal + step, frequency) for step in range(1, horizon + 1)
    ]
