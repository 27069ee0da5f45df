"""Property tests over generated series: exact fits and forecast invariants."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qml_cli.core.forecasting import forecast_metric
from qml_cli.core.forecasting.ets import forecast_smoothing
from qml_cli.core.forecasting.holt_winters import forecast_holt_winters
from qml_cli.core.forecasting.panel import Panel

levels = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


def days(count: int) -> list[dt.date]:
    return [dt.date(2022, 3, 1) + dt.timedelta(days=k) for k in range(count)]


@settings(max_examples=25, deadline=None)
@given(
    level=levels,
    count=st.integers(min_value=1, max_value=80),
    horizon=st.integers(min_value=1, max_value=20),
)
def test_constant_series_forecast_constant(level, count, horizon):
    forecast = forecast_metric(
        days(count), [level] * count, horizon=horizon, metric_type="cash_flow"
    )
    assert np.all(forecast.point == level)
    for lower, upper in forecast.intervals.values():
        assert np.all(upper - lower == 0)


@settings(max_examples=25, deadline=None)
@given(
    intercept=levels,
    slope=st.floats(min_value=-50, max_value=50),
    count=st.integers(min_value=8, max_value=60),
)
def test_holt_fits_any_line_exactly(intercept, slope, count):
    line = intercept + slope * np.arange(count + 5)
    output = forecast_smoothing(Panel.from_series([line[:count]]), 5, True, False)
    scale = 1.0 + abs(intercept) + abs(slope) * count
    np.testing.assert_allclose(output.point[0], line[count:], atol=1e-6 * scale)


@settings(max_examples=20, deadline=None)
@given(
    pattern=st.lists(st.floats(min_value=-100, max_value=100), min_size=4, max_size=4),
    seasons=st.integers(min_value=3, max_value=8),
)
def test_holt_winters_fits_any_season_exactly(pattern, seasons):
    cycle = np.array(pattern)
    output = forecast_holt_winters(
        Panel.from_series([np.tile(cycle, seasons)]), 8, 4, False
    )
    np.testing.assert_allclose(output.point[0], np.tile(cycle, 2), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    count=st.integers(min_value=2, max_value=120),
)
def test_sales_forecast_never_negative(seed, count):
    values = np.abs(np.random.default_rng(seed).normal(0.0, 10.0, count))
    forecast = forecast_metric(days(count), values, horizon=10)
    assert forecast.point.min() >= 0.0
    for lower, upper in forecast.intervals.values():
        assert lower.min() >= 0.0
        assert np.all(upper >= lower)


def test_sales_with_returns_keep_negative_lower_bounds():
    values = np.random.default_rng(3).normal(5.0, 10.0, 120)
    assert values.min() < 0
    forecast = forecast_metric(days(120), values, horizon=10)
    lower, _upper = forecast.intervals[95.0]
    assert lower.min() < 0.0
