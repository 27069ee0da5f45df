"""analyze_metric: dispatch, period comparison and anomaly detection."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from qml_cli.core.forecasting import SUPPORTED_TYPES, analyze_metric
from qml_cli.errors import InvalidInput


def days(count: int) -> list[dt.date]:
    return [dt.date(2023, 1, 2) + dt.timedelta(days=k) for k in range(count)]


def weekly_pattern(count: int) -> np.ndarray:
    t = np.arange(count)
    return (
        100
        + 15 * np.sin(2 * np.pi * t / 7)
        + np.random.default_rng(2).normal(0, 1, count)
    )


@pytest.mark.parametrize("metric_type", SUPPORTED_TYPES)
def test_every_type_reports_type_and_model(metric_type):
    result = analyze_metric(
        days(400), weekly_pattern(400), metric_type=metric_type, horizon=7
    )
    assert result["type"] == metric_type
    assert result["model"]


def test_unsupported_type_lists_supported_ones():
    with pytest.raises(InvalidInput) as caught:
        analyze_metric(days(10), range(10), metric_type="churn", horizon=3)
    assert "churn" in caught.value.message
    assert "anomaly_detection" in caught.value.hint


def test_comparison_hand_checked():
    values = np.arange(1.0, 401.0)  # day k has value k + 1
    result = analyze_metric(
        days(400), values, metric_type="performance_analysis", horizon=1
    )
    assert result["current"]["total"] == sum(range(394, 401))
    assert result["previous"]["total"] == sum(range(387, 394))
    assert result["year_ago"]["total"] == sum(range(30, 37))
    assert result["change_vs_previous"]["absolute"] == 49.0


def test_comparison_without_a_year_of_history():
    result = analyze_metric(
        days(30),
        np.ones(30) + np.arange(30),
        metric_type="performance_analysis",
        horizon=1,
    )
    assert result["year_ago"] is None
    assert result["change_vs_year_ago"] is None


def test_anomaly_flags_recent_spike():
    values = weekly_pattern(200)
    values[-3] += 80.0
    result = analyze_metric(
        days(200), values, metric_type="anomaly_detection", horizon=14
    )
    flagged = [item["date"] for item in result["anomalies"]]
    assert flagged == [days(200)[-3].isoformat()]
    assert result["anomalies"][0]["direction"] == "high"


def test_anomaly_ignores_regular_season():
    result = analyze_metric(
        days(200), weekly_pattern(200), metric_type="anomaly_detection", horizon=28
    )
    assert result["anomalies"] == []


def test_anomaly_ignores_old_spike():
    values = weekly_pattern(200)
    values[50] += 80.0
    result = analyze_metric(
        days(200), values, metric_type="anomaly_detection", horizon=14
    )
    assert result["anomalies"] == []
