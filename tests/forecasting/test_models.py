"""Known-answer tests and exact-fit properties of each model on short series."""

from __future__ import annotations

import numpy as np
import pytest

from qml_cli.core.forecasting import ets, holt_winters, simple, theta
from qml_cli.core.forecasting.panel import Panel
from qml_cli.core.forecasting.seasonal import seasonal_indices, seasonal_test


def panel_of(*series) -> Panel:
    return Panel.from_series([np.asarray(s, dtype=float) for s in series])


def test_naive_repeats_last_value():
    output = simple.forecast_naive(panel_of([1.0, 2.0, 3.0]), 3)
    assert output.point.tolist() == [[3.0, 3.0, 3.0]]


def test_naive_std_grows_with_square_root():
    output = simple.forecast_naive(panel_of([1.0, 2.0, 3.0]), 4)
    np.testing.assert_allclose(output.std[0], np.sqrt([1, 2, 3, 4]))


def test_seasonal_naive_repeats_last_season():
    output = simple.forecast_seasonal_naive(panel_of([9, 9, 1, 2, 3, 4, 5, 6]), 5, 3)
    assert output.point.tolist() == [[4.0, 5.0, 6.0, 4.0, 5.0]]


def test_drift_extends_first_to_last_line():
    output = simple.forecast_drift(panel_of([1.0, 3.0, 5.0]), 2)
    assert output.point.tolist() == [[7.0, 9.0]]


def test_ses_recursion_hand_checked():
    panel = panel_of([2.0, 4.0, 6.0])
    alpha = np.array([[0.5]])
    sse, level, _, _ = ets.run_filter(
        panel,
        alpha,
        np.zeros((1, 1)),
        np.ones((1, 1)),
        np.array([2.0]),
        np.array([0.0]),
        optimise_initial=False,
    )
    # errors 0, 2, 3 and levels 2, 3, 4.5
    assert sse[0, 0] == pytest.approx(13.0)
    assert level[0, 0] == pytest.approx(4.5)


def test_holt_recursion_hand_checked():
    panel = panel_of([1.0, 3.0])
    sse, level, trend, _ = ets.run_filter(
        panel,
        np.array([[0.5]]),
        np.array([[0.5]]),
        np.ones((1, 1)),
        np.array([0.0]),
        np.array([1.0]),
        optimise_initial=False,
    )
    # step 1: forecast 1, error 0, level 1, trend 1
    # step 2: forecast 2, error 1, level 2.5, trend 1 + 0.25
    assert sse[0, 0] == pytest.approx(1.0)
    assert level[0, 0] == pytest.approx(2.5)
    assert trend[0, 0] == pytest.approx(1.25)


def test_initial_state_solution_fits_line_exactly():
    panel = panel_of(5.0 + 2.0 * np.arange(12))
    sse, _, _, _ = ets.run_filter(
        panel,
        np.array([[0.3]]),
        np.array([[0.1]]),
        np.ones((1, 1)),
        np.array([0.0]),
        np.array([0.0]),
    )
    assert sse[0, 0] == pytest.approx(0.0, abs=1e-5)  # the solve adds a tiny ridge


def test_holt_forecasts_pure_trend_exactly():
    line = 3.0 + 2.0 * np.arange(30)
    output = ets.forecast_smoothing(panel_of(line), 6, trend=True, damped=False)
    np.testing.assert_allclose(
        output.point[0], 3.0 + 2.0 * np.arange(30, 36), atol=1e-6
    )


def test_ses_forecasts_constant_exactly():
    output = ets.forecast_smoothing(panel_of(np.full(20, 4.2)), 5, False, False)
    np.testing.assert_allclose(output.point[0], 4.2)
    np.testing.assert_allclose(output.std[0], 0.0, atol=1e-12)


def test_seasonal_naive_forecasts_pure_season_exactly():
    season = np.tile([5.0, 7.0, 3.0, 9.0], 6)
    output = simple.forecast_seasonal_naive(panel_of(season), 8, 4)
    np.testing.assert_allclose(output.point[0], np.tile([5.0, 7.0, 3.0, 9.0], 2))


def test_holt_winters_additive_forecasts_pure_season_exactly():
    season = np.tile([5.0, 7.0, 3.0, 9.0], 6)
    output = holt_winters.forecast_holt_winters(panel_of(season), 8, 4, False)
    np.testing.assert_allclose(
        output.point[0], np.tile([5.0, 7.0, 3.0, 9.0], 2), atol=1e-9
    )


def test_holt_winters_multiplicative_tracks_pure_season():
    season = np.tile([5.0, 7.0, 3.0, 9.0], 6)
    output = holt_winters.forecast_holt_winters(panel_of(season), 4, 4, True)
    np.testing.assert_allclose(output.point[0], [5.0, 7.0, 3.0, 9.0], rtol=1e-9)


def test_theta_matches_hyndman_billah_formula():
    values = np.array([10.0, 12.0, 11.0, 14.0, 13.0, 16.0, 15.0, 18.0])
    panel = panel_of(values)
    output = theta.forecast_theta(panel, 3)
    alpha, _, _, level, _, _ = ets.fit_smoothing(panel, trend=False, damped=False)
    slope = np.polyfit(np.arange(8), values, 1)[0]
    decay = (1 - (1 - alpha[0]) ** 8) / alpha[0]
    expected = level[0] + slope / 2 * (np.arange(3) + decay)
    np.testing.assert_allclose(output.point[0], expected)


def test_linear_trend_matches_polyfit():
    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    intercept, slope = theta.linear_trend(panel_of(values))
    expected_slope, expected_intercept = np.polyfit(np.arange(8), values, 1)
    assert slope[0] == pytest.approx(expected_slope)
    assert intercept[0] == pytest.approx(expected_intercept)


def test_croston_hand_checked():
    # One demand of 3 every 3 periods: size 3, interval 3, forecast 1 per period.
    output = simple.forecast_croston(panel_of([0, 0, 3, 0, 0, 3, 0, 0, 3]), 2)
    np.testing.assert_allclose(output.point[0], [1.0, 1.0])


def test_tsb_probability_decays_after_demand_stops():
    recent = simple.forecast_tsb(panel_of([0, 4, 0, 4, 0, 4, 0, 4]), 1).point[0, 0]
    idle = simple.forecast_tsb(panel_of([0, 4, 0, 4, 0, 4, 0, 0, 0, 0]), 1).point[0, 0]
    assert idle < recent


def test_seasonal_test_detects_sine():
    t = np.arange(48)
    found = seasonal_test(panel_of(10 + np.sin(2 * np.pi * t / 12)), 12)
    assert found.tolist() == [True]


def test_seasonal_test_rejects_white_noise():
    noise = np.random.default_rng(3).normal(10, 1, 48)
    assert seasonal_test(panel_of(noise), 12).tolist() == [False]


def test_seasonal_test_needs_three_seasons():
    t = np.arange(30)
    assert seasonal_test(panel_of(10 + np.sin(2 * np.pi * t / 12)), 12).tolist() == [
        False
    ]


def test_seasonal_indices_follow_column_phase():
    pattern = np.array([1.0, 2.0, 3.0, 2.0])
    long_row = np.tile(pattern, 6)
    short_row = long_row[1:]  # right-aligned: same phase per column
    indices = seasonal_indices(
        panel_of(long_row, short_row), 4, np.array([False, False])
    )
    np.testing.assert_allclose(indices[0], pattern - 2.0)
    np.testing.assert_allclose(indices[1], pattern - 2.0)
