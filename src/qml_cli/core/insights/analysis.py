"""The analyses of one metric, run together: `analyze` is the entry point."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from qml_cli.core.insights.advice import recommendation_findings
from qml_cli.core.insights.anomaly import anomaly_findings
from qml_cli.core.insights.correlation import align, correlation_findings
from qml_cli.core.insights.decompose import Decomposition, SeasonTest, decompose
from qml_cli.core.insights.finding import Finding
from qml_cli.core.insights.outlook import (
    ForecastFn,
    optimization_findings,
    prediction_findings,
)
from qml_cli.core.insights.seasonality import detect_season, season_findings
from qml_cli.core.insights.segmentation import segmentation_findings
from qml_cli.core.insights.series import Series, prepare, robust_scale
from qml_cli.core.insights.shifts import detect_shifts, shift_findings, shift_offsets
from qml_cli.core.insights.trend import trend_findings
from qml_cli.errors import InvalidInput

TYPES = (
    "trend",
    "seasonality",
    "anomaly",
    "changepoint",
    "correlation",
    "segmentation",
    "recommendation",
    "prediction",
    "optimization",
)
# The types a recommendation can cite; all of them run when recommendations are asked.
CITABLE = (
    "trend",
    "seasonality",
    "anomaly",
    "changepoint",
    "correlation",
    "optimization",
)


@dataclass
class Context:
    """The series, season and decomposition shared by the analyses of one run."""

    series: Series
    season: SeasonTest | None
    parts: Decomposition
    level: float  # median of the deseasonalised observed values
    spread: float  # robust standard deviation of the observed values


def parse_types(types: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate insight types (a comma-separated string or names); raise
    `InvalidInput` naming an unknown one. None means every type."""
    if types is None:
        return TYPES
    names = types.split(",") if isinstance(types, str) else list(types)
    names = [name.strip().lower() for name in names if name.strip()]
    unknown = [name for name in names if name not in TYPES]
    if unknown or not names:
        raise InvalidInput(
            f"unknown insight type {', '.join(unknown) or '(none)'}.",
            hint=f"Choose from {', '.join(TYPES)}.",
        )
    return tuple(name for name in TYPES if name in names)


def build_context(series: Series) -> Context:
    """Detect the season and decompose the series once for all analyses."""
    season = detect_season(series)
    parts = decompose(series, season.period if season else None)
    observed = series.observed
    level = float(np.median(parts.deseasonalised[observed]))
    return Context(series, season, parts, level, robust_scale(series.values))


def _other_residuals(context: Context, other_metrics: dict) -> dict[str, np.ndarray]:
    window_end = context.series.times[-1]
    span_days = float((window_end - context.series.times[0]).astype(np.int64)) / 86400.0
    residuals = {}
    for name, (stamps, numbers) in other_metrics.items():
        try:
            other = prepare(stamps, numbers, span_days + 1.0)
        except InvalidInput:
            continue
        season = detect_season(other)
        parts = decompose(other, season.period if season else None)
        aligned = align(context.series, other, parts.residual)
        if aligned is not None:
            residuals[name] = aligned
    return residuals


def _run(
    kind: str, context: Context, other_metrics: dict, forecast_fn: ForecastFn | None
) -> list[Finding]:
    series, parts = context.series, context.parts
    if kind == "trend":
        shifts, _ = detect_shifts(series, parts)
        return trend_findings(series, parts, shift_offsets(parts, shifts))
    if kind == "seasonality":
        return season_findings(series, context.season, context.level, context.spread)
    if kind == "anomaly":
        expected = parts.trend + parts.seasonal
        return anomaly_findings(series, parts.residual, expected, context.spread)
    if kind == "changepoint":
        return shift_findings(series, parts, context.level, context.spread)
    if kind == "correlation":
        others = _other_residuals(context, other_metrics)
        return correlation_findings(series, parts.residual, others)
    if kind == "segmentation":
        return segmentation_findings(series, context.level, context.spread)
    if kind == "prediction":
        return prediction_findings(series, forecast_fn, parts.period, context.spread)
    if kind == "optimization":
        return optimization_findings(series)
    raise ValueError(f"no analysis for {kind!r}")


def analyze(
    timestamps: Sequence,
    values: Sequence[float],
    *,
    types: Iterable[str] | str | None = None,
    window_days: float | None = None,
    other_metrics: dict[str, tuple[Sequence, Sequence[float]]] | None = None,
    forecast_fn: ForecastFn | None = None,
    min_confidence: float = 0.5,
) -> list[Finding]:
    """Run the requested analyses on one metric and return their findings.

    `window_days` keeps the points of the last that many days. `other_metrics`
    maps names to (timestamps, values) for the correlation analysis. Findings whose
    confidence is below `min_confidence` are kept with `low_confidence` set. When
    recommendations are requested, the findings they cite are returned too.
    Raises `InvalidInput` for unknown types or unusable data.
    """
    requested = parse_types(types)
    series = prepare(timestamps, values, window_days)
    context = build_context(series)
    wanted = set(requested)
    if "recommendation" in wanted:
        wanted |= set(CITABLE)
    findings: list[Finding] = []
    for kind in TYPES:
        if kind in wanted and kind != "recommendation":
            findings += _run(kind, context, other_metrics or {}, forecast_fn)
    if "recommendation" in wanted:
        advice = recommendation_findings(findings)
        cited = {key for finding in advice for key in finding.cites}
        findings = [f for f in findings if f.type in requested or f.key in cited]
        findings += advice
    for finding in findings:
        finding.low_confidence = finding.confidence < min_confidence
    return findings
