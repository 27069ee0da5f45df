"""Recommendations: rules over the findings of a run, each citing the findings it
rests on. A recommendation is only as confident as the least confident of them."""

from __future__ import annotations

from collections.abc import Callable

from qml_cli.core.insights.finding import Finding

Rule = Callable[[Finding], tuple[str, str] | None]


def _trend(finding: Finding) -> tuple[str, str] | None:
    rate = finding.evidence.get("percent_per_unit")
    unit = finding.evidence.get("unit")
    wording = f"{rate:+.1f}% per {unit}" if rate is not None else "steadily"
    if finding.evidence["slope_per_unit"] < 0:
        return (
            "Investigate the decline",
            f"The metric is falling {wording}. Look for its cause (prices, "
            "traffic, availability) before it compounds.",
        )
    return (
        "Plan for growth",
        f"The metric is rising {wording}. Check that capacity, stock and budgets "
        "follow the growth.",
    )


def _season(finding: Finding) -> tuple[str, str] | None:
    return (
        "Schedule around the peak",
        f"Put promotions, staffing and stock on {finding.evidence['peak']}, the "
        f"peak of the season, and maintenance on {finding.evidence['trough']}, "
        "its trough.",
    )


def _shift(finding: Finding) -> tuple[str, str] | None:
    when = finding.evidence["timestamp"]
    return (
        "Re-baseline after the shift",
        f"The level changed from {when}. Find what changed then, compare targets "
        "with the new level, and base forecasts on data after it.",
    )


def _anomaly(finding: Finding) -> tuple[str, str] | None:
    if finding.evidence["severity"] == "moderate":
        return None
    when = finding.evidence["timestamp"]
    return (
        f"Check {when}",
        f"Confirm the {finding.evidence['direction']} on {when} with the source "
        "data; if it is an error, correct it, and if it is real, find its cause.",
    )


def _correlation(finding: Finding) -> tuple[str, str] | None:
    lag = finding.evidence["lag"]
    if lag <= 0:
        return None
    other = finding.evidence["other"]
    unit = finding.evidence["lag_unit"]
    return (
        f"Watch {other}",
        f"{other} moves {lag} {unit}{'s' if lag > 1 else ''} ahead of this "
        "metric: use it as an early warning.",
    )


def _opportunity(finding: Finding) -> tuple[str, str] | None:
    block = finding.evidence["block"]
    return (
        "Repeat the best periods",
        f"Study what the best {block}s did differently; a typical {block} "
        f"brought up to them gains {finding.evidence['gap']:.4g}.",
    )


RULES: dict[str, Rule] = {
    "trend": _trend,
    "seasonality": _season,
    "changepoint": _shift,
    "anomaly": _anomaly,
    "correlation": _correlation,
    "optimization": _opportunity,
}


def recommendation_findings(findings: list[Finding]) -> list[Finding]:
    """Apply each rule to each detected finding; the recommendation cites it."""
    out = []
    for finding in findings:
        rule = RULES.get(finding.type)
        if rule is None or not finding.detected:
            continue
        advice = rule(finding)
        if advice is None:
            continue
        title, message = advice
        out.append(
            Finding(
                type="recommendation",
                key=f"recommendation:{finding.key}",
                title=title,
                message=message,
                confidence=finding.confidence,
                relevance=0.9 * finding.relevance,
                cites=[finding.key],
                evidence={"rule": finding.type, "cited_confidence": finding.confidence},
            )
        )
    return out
