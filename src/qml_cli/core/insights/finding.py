"""The result of one analysis: a finding with its evidence and confidence."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Significance level of every detection test: a finding is emitted only when its
# p-value (corrected for multiple comparisons where there are several) is below it.
# 1% rather than 5% because every analysis of a run adds its own chance of a false
# alarm.
ALPHA = 0.01


@dataclass
class Finding:
    """One insight: what was found, in words an operator can pass on, and why.

    `confidence` is in [0, 1] and comes from the finding's test (1 - p-value where
    the test gives one). `relevance` in [0, 1] ranks findings for selection.
    `key` identifies the finding within one run; `cites` lists the keys of the
    findings a recommendation rests on. `detected` is False for a statement that
    something is absent, such as "no level shift", which is reported but never
    selected.
    """

    type: str
    key: str
    title: str
    message: str
    confidence: float
    relevance: float
    evidence: dict[str, Any] = field(default_factory=dict)
    cites: list[str] = field(default_factory=list)
    detected: bool = True
    low_confidence: bool = False

    def __post_init__(self) -> None:
        self.confidence = clip01(self.confidence)
        self.relevance = clip01(self.relevance)

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as plain JSON-ready values."""
        document = asdict(self)
        document["evidence"] = {k: _plain(v) for k, v in self.evidence.items()}
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Finding:
        """Rebuild a finding stored by `to_dict`."""
        return cls(**document)


def clip01(value: float) -> float:
    """Clip to [0, 1]; NaN becomes 0."""
    if value != value:
        return 0.0
    return float(min(1.0, max(0.0, value)))


def confidence_from_p(p_value: float) -> float:
    """Map a p-value to a confidence of 1 - p, clipped to [0, 1]."""
    return clip01(1.0 - float(p_value))


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def percent_of_level(delta: float, level: float, spread: float) -> float | None:
    """Express `delta` as a percentage of `level`, or None when the level is too close
    to zero (within one `spread`) for a percentage to mean anything."""
    if not math.isfinite(level) or abs(level) <= max(spread, 1e-12):
        return None
    return 100.0 * delta / abs(level)


def describe_change(delta: float, level: float, spread: float, unit: str = "") -> str:
    """Describe a change scale-free: in percent of the level, else in standard
    deviations of the series when the level is near zero."""
    pct = percent_of_level(delta, level, spread)
    suffix = f" {unit}" if unit else ""
    if pct is not None:
        return f"{pct:+.1f}%{suffix}"
    if spread > 0:
        return f"{delta / spread:+.2f} standard deviations{suffix}"
    return f"{delta:+.3g}{suffix}"
