"""Frequency inference, the regular grid and the missing-value policies."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from qml_cli.core.forecasting import calendar
from qml_cli.errors import InvalidInput


def days(*offsets: int) -> list[dt.date]:
    return [dt.date(2024, 1, 1) + dt.timedelta(days=offset) for offset in offsets]


@pytest.mark.parametrize(
    ("step", "expected"),
    [(1, "daily"), (7, "weekly"), (30, "monthly"), (91, "quarterly"), (365, "yearly")],
)
def test_infer_frequency_from_spacing(step, expected):
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=step * k) for k in range(12)]
    assert calendar.infer_frequency(dates) == expected


def test_regularise_zero_fills_gaps():
    ordinals, values, gaps = calendar.regularise(
        days(0, 1, 4), np.array([5.0, 6.0, 9.0]), "daily", "zero"
    )
    assert values.tolist() == [5.0, 6.0, 0.0, 0.0, 9.0]
    assert gaps == 2


def test_regularise_interpolates_gaps():
    _, values, _ = calendar.regularise(
        days(0, 3), np.array([3.0, 9.0]), "daily", "interpolate"
    )
    assert values.tolist() == [3.0, 5.0, 7.0, 9.0]


def test_regularise_skip_keeps_observed_periods():
    ordinals, values, gaps = calendar.regularise(
        days(0, 3), np.array([3.0, 9.0]), "daily", "skip"
    )
    assert values.tolist() == [3.0, 9.0]
    assert gaps == 2


def test_regularise_sums_values_in_one_month():
    dates = [dt.date(2024, 1, 3), dt.date(2024, 1, 20), dt.date(2024, 2, 5)]
    _, values, _ = calendar.regularise(
        dates, np.array([1.0, 2.0, 4.0]), "monthly", "zero"
    )
    assert values.tolist() == [3.0, 4.0]


def test_regularise_rejects_unknown_policy():
    with pytest.raises(InvalidInput, match="missing-value policy"):
        calendar.regularise(days(0, 1), np.array([1.0, 2.0]), "daily", "drop")


def test_default_missing_by_type():
    assert calendar.default_missing("sales_forecast") == "zero"
    assert calendar.default_missing("demand_forecast") == "zero"
    assert calendar.default_missing("cash_flow") == "interpolate"


def test_season_lengths_daily_adds_year_after_two_years():
    assert calendar.season_lengths("daily", 729) == (7,)
    assert calendar.season_lengths("daily", 730) == (7, 365)


@pytest.mark.parametrize(
    ("frequency", "expected"), [("monthly", (12,)), ("quarterly", (4,)), ("yearly", ())]
)
def test_season_lengths_by_frequency(frequency, expected):
    assert calendar.season_lengths(frequency, 100) == expected


def test_future_dates_are_period_starts():
    ordinal = calendar.period_ordinal(dt.date(2024, 11, 17), "monthly")
    assert calendar.future_dates(ordinal, "monthly", 3) == [
        dt.date(2024, 12, 1),
        dt.date(2025, 1, 1),
        dt.date(2025, 2, 1),
    ]


def test_weekly_periods_start_on_monday():
    ordinal = calendar.period_ordinal(dt.date(2024, 5, 16), "weekly")  # a Thursday
    assert calendar.period_start(ordinal, "weekly") == dt.date(2024, 5, 13)
