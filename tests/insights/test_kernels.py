"""The statistical kernels against brute force and SciPy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from qml_cli.core.insights.anomaly import esd_critical, generalized_esd
from qml_cli.core.insights.changepoint import fit_segments, pelt
from qml_cli.core.insights.correlation import holm
from qml_cli.core.insights.segmentation import optimal_kmeans
from qml_cli.core.insights.trend import kendall_test, mann_kendall


def line_sse(u, y):
    slope, intercept = np.polyfit(u, y, 1)
    return float(np.sum((y - intercept - slope * u) ** 2))


def brute_force_partition(y, penalty, min_segment):
    n = len(y)
    u = np.arange(n, dtype=float)
    best = (np.inf, [])
    for count in range(0, n // min_segment):
        for cuts in itertools.combinations(
            range(min_segment, n - min_segment + 1), count
        ):
            bounds = [0, *cuts, n]
            if any(
                b - a < min_segment
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ):
                continue
            total = sum(
                line_sse(u[a:b], y[a:b])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            )
            total += penalty * count
            if total < best[0] - 1e-9:
                best = (total, list(cuts))
    return best[1]


@pytest.mark.parametrize("seed", range(4))
def test_pelt_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, 30)
    y[12:] += 3.0 * (seed % 2)
    y[22:] -= 2.0
    assert pelt(np.arange(30), y, penalty=6.0, min_segment=6) == brute_force_partition(
        y, 6.0, 6
    )


def test_fit_segments_recovers_lines():
    u = np.arange(40, dtype=float)
    y = np.where(u < 20, 1.0 + 0.5 * u, 30.0 - 0.25 * u)
    left, right = fit_segments(u, y, [20])
    assert (left.slope, left.intercept) == pytest.approx((0.5, 1.0))
    assert (right.slope, right.intercept) == pytest.approx((-0.25, 30.0))


def brute_force_kmeans(values, k, min_size):
    n = len(values)
    best = (np.inf, None)
    for cuts in itertools.combinations(range(1, n), k - 1):
        bounds = [0, *cuts, n]
        if any(b - a < min_size for a, b in zip(bounds[:-1], bounds[1:], strict=True)):
            continue
        total = sum(
            np.sum((values[a:b] - values[a:b].mean()) ** 2)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        )
        if total < best[0] - 1e-12:
            best = (total, [0, *cuts])
    return best[1]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_optimal_kmeans_matches_brute_force(k):
    values = np.sort(np.random.default_rng(k).gamma(2.0, 3.0, 16))
    assert optimal_kmeans(values, k, 2) == brute_force_kmeans(values, k, 2)


def test_optimal_kmeans_rejects_too_many_groups():
    with pytest.raises(ValueError, match="cannot form 4 groups of 3"):
        optimal_kmeans(np.arange(10.0), 4, 3)


def test_mann_kendall_matches_kendall_tau():
    values = np.random.default_rng(5).normal(size=40) + 0.05 * np.arange(40)
    s, variance = mann_kendall(values)
    tau = stats.kendalltau(np.arange(40), values).statistic
    assert s == pytest.approx(tau * 40 * 39 / 2)
    assert variance == pytest.approx(40 * 39 * 85 / 18)


def test_mann_kendall_tie_correction():
    s, variance = mann_kendall(np.array([1.0, 1.0, 2.0, 3.0]))
    assert s == 5.0
    assert variance == pytest.approx((4 * 3 * 13 - 2 * 1 * 9) / 18)


def test_kendall_autocorrelation_inflates_variance():
    values = np.random.default_rng(6).normal(size=50) + 0.03 * np.arange(50)
    plain = kendall_test(values, None)
    corrected = kendall_test(values, None, rho=0.5)
    assert corrected.variance == pytest.approx(3 * plain.variance)
    assert corrected.p_value > plain.p_value


def test_seasonal_kendall_sums_phases():
    values = np.random.default_rng(7).normal(size=28)
    phases = np.arange(28) % 7
    combined = kendall_test(values, phases)
    parts = [mann_kendall(values[phases == p]) for p in range(7)]
    assert combined.s == sum(part[0] for part in parts)
    assert combined.variance == pytest.approx(sum(part[1] for part in parts))


def test_holm_step_down():
    adjusted = holm([0.01, 0.04, 0.03, 0.20])
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.20])


def test_esd_false_alarm_rate_near_alpha():
    rng = np.random.default_rng(8)
    alarms = sum(
        bool(generalized_esd(rng.normal(size=100), 3, alpha=0.05)) for _ in range(400)
    )
    assert 0.01 <= alarms / 400 <= 0.08


def test_esd_critical_grows_with_n():
    assert esd_critical(50, 0.05) < esd_critical(5000, 0.05)


def test_esd_finds_masked_pair():
    values = np.random.default_rng(9).normal(size=200)
    values[[50, 51]] = [9.0, 9.2]
    found = generalized_esd(values, 5, alpha=0.01)
    assert sorted(a.index for a in found) == [50, 51]
