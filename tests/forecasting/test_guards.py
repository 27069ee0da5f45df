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


def seasonal_sales(count: int, zero_every: int | None = None) -> np.ndarray:
    t = np.arange(count)
    values = (
        50
        + 20 * np.sin(2 * np.pi * t / 7)
        + np.random.default_rng(5).normal(0, 2, count)
    )
    if zero_every:
        values[::zero_every] = 0.0
    return values


def test_multiplicative_model_skipped_on_zeros():
    from qml_cli.core.forecasting.models import applicable, prepare
    from qml_cli.core.forecasting.panel import Panel

    panel = Panel.from_series([seasonal_sales(84, zero_every=9), seasonal_sales(84)])
    prepared = prepare(panel, (7,), 7)
    mask = applicable("holt_winters_multiplicative", prepared)
    assert mask.tolist() == [False, True]


def test_seasonal_adjustment_is_additive_with_negatives():
    from qml_cli.core.forecasting.models import prepare
    from qml_cli.core.forecasting.panel import Panel

    values = seasonal_sales(84) - 60.0
    prepared = prepare(Panel.from_series([values]), (7,), 7)
    assert prepared.multiplicative.tolist() == [False]


def test_zero_policy_is_default_for_sales():
    stamps = days(30)
    del stamps[10:13]
    forecast = forecast_metric(stamps, np.arange(27.0) + 1, horizon=3)
    assert forecast.missing_policy == "zero"
    assert forecast.gaps_filled == 3


def test_interpolate_policy_is_default_for_cash_flow():
    stamps = days(30)
    del stamps[10:13]
    forecast = forecast_metric(
        stamps, np.arange(27.0) + 1, horizon=3, metric_type="cash_flow"
    )
    assert forecast.missing_policy == "interpolate"


def test_skip_policy_notes_shifted_phases():
    stamps = days(30)
    del stamps[10:13]
    forecast = forecast_metric(stamps, np.arange(27.0) + 1, horizon=3, missing="skip")
    assert forecast.n_observations == 27
    assert "skipped" in forecast.notes[0]


def test_forecast_rejects_unknown_missing_policy():
    with pytest.raises(InvalidInput, match="missing-value policy"):
        forecast_metric(days(10), list(range(10)), horizon=2, missing="drop")


def test_forecast_is_deterministic():
    values = seasonal_sales(120)
    first = forecast_metric(days(120), values, horizon=14)
    second = forecast_metric(days(120), values, horizon=14)
    assert first.to_dict() == second.to_dict()


def test_forecast_document_is_json_ready():
    import json

    forecast = forecast_metric(days(120), seasonal_sales(120), horizon=14)
    document = json.loads(json.dumps(forecast.to_dict()))
    assert document["type"] == "sales_forecast"
    assert len(document["intervals"]["95"]["upper"]) == 14
    assert document["dates"][0] == (START + dt.timedelta(days=120)).isoformat()


def test_intervals_nest_by_level():
    forecast = forecast_metric(
        days(120), seasonal_sales(120), horizon=14, levels=(50, 80, 95)
    )
    lower50, upper50 = forecast.intervals[50.0]
    lower95, upper95 = forecast.intervals[95.0]
    assert np.all(lower95 <= lower50)
    assert np.all(upper95 >= upper50)


def test_weekly_season_detected_on_daily_data():
    forecast = forecast_metric(days(120), seasonal_sales(120), horizon=14)
    assert forecast.frequency == "daily"
    assert forecast.season_length == 7


def test_intermittent_demand_uses_croston_and_tsb():
    rng = np.random.default_rng(11)
    values = np.where(rng.random(120) < 0.2, rng.integers(1, 6, 120), 0).astype(float)
    forecast = forecast_metric(
        days(120), values, horizon=7, metric_type="demand_forecast"
    )
    assert "croston" in forecast.ensemble
    assert "tsb" in forecast.ensemble


def test_quantum_request_reports_exact_choice():
    forecast = forecast_metric(
        days(120), seasonal_sales(120), horizon=7, use_quantum=True
    )
    assert forecast.selection["exact"]["bits"].count(1) == forecast.selection["size"]
    assert set(forecast.ensemble) == set(forecast.selection["members"])


def test_exact_season_gets_finite_intervals():
    values = 20 + 5 * np.sin(np.arange(90) * 2 * np.pi / 7)
    forecast = forecast_metric(days(90), values, horizon=14)
    for lower, upper in forecast.intervals.values():
        assert np.all(np.isfinite(lower))
        assert np.all(np.isfinite(upper))
    assert forecast.cv_error["mase"] < 1e-6
