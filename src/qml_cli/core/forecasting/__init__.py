"""The forecasting engine: ETS, Theta and intermittent-demand models chosen per
series by rolling-origin cross-validation, with calibrated prediction intervals.

Public entry points: `forecast_metric` for one metric, `analyze_metric` for every
prediction type in `SUPPORTED_TYPES`, `forecast_panel` for many series at once,
and `plot.plot_forecast` to draw a result.
"""

from qml_cli.core.forecasting.analysis import (
    SUPPORTED_TYPES,
    analyze_metric,
    check_type,
)
from qml_cli.core.forecasting.batch import PanelForecast, forecast_panel
from qml_cli.core.forecasting.engine import forecast_metric
from qml_cli.core.forecasting.panel import Panel
from qml_cli.core.forecasting.result import Forecast

__all__ = [
    "SUPPORTED_TYPES",
    "Forecast",
    "Panel",
    "PanelForecast",
    "analyze_metric",
    "check_type",
    "forecast_metric",
    "forecast_panel",
]
