"""Draw a forecast result: the history, the point forecast and its intervals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qml_cli.errors import InvalidInput

FORMATS = (".png", ".svg")


def plot_forecast(
    history_dates: Sequence[dt.date],
    history_values: Sequence[float],
    result_dict: dict[str, Any],
    path: str | Path,
) -> Path:
    """Write a PNG or SVG (chosen by the suffix of `path`) and return the path.

    `result_dict` is a forecast document from `Forecast.to_dict()`. Raises
    InvalidInput for another suffix or when matplotlib is not installed.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InvalidInput(
            f"unsupported plot format {path.suffix or path.name!r}.",
            hint="Name a file ending in .png or .svg.",
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise InvalidInput(
            "matplotlib is not installed",
            hint="Install the plot extra: pip install 'qml-cli[plot]'.",
        ) from None

    figure, axes = pyplot.subplots(figsize=(10, 4.5))
    _draw(axes, history_dates, history_values, result_dict)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format=path.suffix.lower().lstrip("."))
    pyplot.close(figure)
    return path


def _draw(axes, history_dates, history_values, result_dict: dict[str, Any]) -> None:
    """Draw the history line, the interval bands (widest palest) and the forecast."""
    dates = [dt.date.fromisoformat(day) for day in result_dict["dates"]]
    axes.plot(
        list(history_dates),
        list(history_values),
        color="#1f4e79",
        lw=1.2,
        label="history",
    )
    levels = sorted(result_dict.get("intervals", {}), key=float, reverse=True)
    for shade, level in enumerate(levels):
        band = result_dict["intervals"][level]
        axes.fill_between(
            dates,
            band["lower"],
            band["upper"],
            color="#e07b39",
            alpha=0.18 + 0.17 * shade,
            lw=0,
            label=f"{level}% interval",
        )
    axes.plot(dates, result_dict["point"], color="#c0392b", lw=1.6, label="forecast")
    model = result_dict.get("model", "forecast")
    axes.set_title(f"{model} ({result_dict.get('frequency', '')})")
    axes.legend(loc="best", frameon=False)
    axes.grid(alpha=0.3)
