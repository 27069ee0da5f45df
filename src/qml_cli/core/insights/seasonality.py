"""Seasonality: which calendar period repeats, how strongly, and its peak and
trough."""

from __future__ import annotations

import numpy as np

from qml_cli.core.insights.decompose import SeasonTest, phase_label, test_season
from qml_cli.core.insights.finding import ALPHA, Finding, describe_change
from qml_cli.core.insights.series import STEPS, Series

# Below this strength a significant season is too weak to act on.
MIN_STRENGTH = 0.1
# A longer candidate period replaces a shorter one only when it explains clearly
# more (a weekly profile of hourly data always contains the daily one).
LONGER_PERIOD_MARGIN = 0.1


def detect_season(series: Series) -> SeasonTest | None:
    """Return the season to remove, or None: the shortest candidate period that is
    significant at ALPHA after a Bonferroni correction over the candidates and
    strong enough, unless a longer one is clearly stronger."""
    candidates = STEPS.get(series.step, (0, "", 0, ()))[3]
    tests = [
        test
        for test in (test_season(series, period) for period in candidates)
        if test is not None
    ]
    accepted = [
        test
        for test in tests
        if test.p_value * len(tests) < ALPHA and test.strength >= MIN_STRENGTH
    ]
    if not accepted:
        return None
    chosen = accepted[0]
    for test in accepted[1:]:
        if test.strength >= chosen.strength + LONGER_PERIOD_MARGIN:
            chosen = test
    chosen.p_value = min(1.0, chosen.p_value * len(tests))
    return chosen


def season_findings(
    series: Series, season: SeasonTest | None, level: float, spread: float
) -> list[Finding]:
    """Return the seasonality finding for a detected season."""
    if season is None:
        return []
    peak = int(np.argmax(season.profile))
    trough = int(np.argmin(season.profile))
    peak_label = phase_label(series, season.period, peak)
    trough_label = phase_label(series, season.period, trough)
    swing = float(season.profile[peak] - season.profile[trough])
    name = _season_name(series, season.period)
    peak_change = describe_change(float(season.profile[peak]), level, spread)
    trough_change = describe_change(float(season.profile[trough]), level, spread)
    message = (
        f"The metric follows a {name} pattern (strength {season.strength:.2f} "
        f"of 1): it peaks on {peak_label} ({peak_change} against the average) "
        f"and is lowest on {trough_label} ({trough_change})."
    )
    return [
        Finding(
            type="seasonality",
            key=f"seasonality:{season.period}",
            title=f"{name.capitalize()} pattern, peak on {peak_label}",
            message=message,
            confidence=1.0 - season.p_value,
            relevance=0.3 + 0.7 * season.strength,
            evidence={
                "period": season.period,
                "strength": season.strength,
                "p_value": season.p_value,
                "peak": peak_label,
                "trough": trough_label,
                "peak_effect": float(season.profile[peak]),
                "trough_effect": float(season.profile[trough]),
                "swing": swing,
                "level": level,
                "profile": [float(v) for v in season.profile],
            },
        )
    ]


def _season_name(series: Series, period: int) -> str:
    names = {
        ("hour", 24): "daily",
        ("hour", 168): "weekly",
        ("day", 7): "weekly",
        ("day", 365): "yearly",
        ("week", 52): "yearly",
        ("month", 12): "yearly",
    }
    return names.get((series.step, period), f"{period}-step")
