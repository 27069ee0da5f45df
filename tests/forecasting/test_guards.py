"""Input checks and guards of `forecast_metric`."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from qml_cli.core.forecasting import forecast_metric
from qml_cli.errors import InvalidInput

START = dt.date(2024, 1, 1)


def days(count: int, start: dt.date = START) -> list[dt.date]:
    return [start + dt.timedelta(days=offset) for offset in range(count)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_forecast_rejects_non_finite_value(bad):
    values = [1.0, 2.0, bad, 4.0]
    with pytest.raises(InvalidInput, match="not finite"):
        forecast_metric(days(4), values, horizon=2)


def test_forecast_rejects_unsorted_timestamps():
    stamps = days(4)
    stamps[1], stamps[2] = stamps[2], stamps[1]
    with pytest.raises(InvalidInput, match="not sorted"):
        forecast_metric(stamps, [1, 2, 3, 4], horizon=2)


def test_forecast_rejects_duplicate_timestamps():
    stamps = days(4)
    stamps[2] = stamps[1]
    with pytest.raises(InvalidInput, match="duplicate timestamp"):
        forecast_metric(stamps, [1, 2, 3, 4], horizon=2)


@pytest.mark.parametrize("horizon", [0, -3, 1.5, True])
def test_forecast_rejects_bad_horizon(horizon):
    with pytest.raises(InvalidInput, match="invalid horizon"):
        forecast_metric(days(10), list(range(10)), horizon=horizon)


@pytest.mark.parametrize("level", [0, 100, -5, 150])
def test_forecast_rejects_level_outside_open_interval(level):
    with pytest.raises(InvalidInput, match="invalid interval level"):
        forecast_metric(days(10), list(range(10)), horizon=2, levels=(level,))


def test_forecast_error_names_value_and_fix():
    with pytest.raises(InvalidInput) as caught:
        forecast_metric(days(3), [1.0, math.nan, 2.0], horizon=1)
    assert "nan" in caught.value.message
    assert caught.value.hint


def test_constant_series_gives_zero_width_intervals():
    forecast = forecast_metric(days(40), [7.5] * 40, horizon=5)
    assert forecast.model == "constant"
    assert np.all(forecast.point == 7.5)
    for lower, upper in forecast.intervals.values():
        assert np.all(lower == upper)


def test_short_series_falls_back_with_reason():
    forecast = forecast_metric(days(3), [4.0, 6.0, 5.0], horizon=4)
    assert forecast.model == "naive"
    assert "Only 3 observations" in forecast.reason


@pytest.mark.parametrize("count", [1, 2, 5, 8, 13])
def test_short_series_never_raises(count):
    rng = np.random.default_rng(count)
    forecast = forecast_metric(days(count), rng.uniform(1, 9, count), horizon=6)
    assert len(forecast.point) == 6
    assert np.all(np.isfinite(forecast.point))


def test_sales_forecast_is_never_negative():
    values = np.linspace(100.0, 2.0, 60)
    forecast = forecast_metric(
        days(60), values, horizon=60, metric_type="sales_forecast"
    )
    assert forecast.point.min() >= 0.0
    for lower, _ in forecast.intervals.values():
        assert lower.min() >= 0.0


def test_cash_flow_may_go_negative():
    values = np.linspace(100.0, 2.0, 60)
    forecast = forecast_metric(days(60), values, horizon=60, metric_type="cash_flow")
    assert forecast.point.min() < 0.0
