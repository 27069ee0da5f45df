"""The forecasting engine: ETS, Theta and intermittent-demand models chosen per
series by rolling-origin cross-validation, with calibrated prediction intervals.

Public entry points: `forecast_metric` for one metric, `forecast_panel` for many
series at once, and `Forecast`, the result.
"""

from qml_cli.core.forecasting.batch import PanelForecast, forecast_panel
from qml_cli.core.forecasting.engine import forecast_metric
from qml_cli.core.forecasting.panel import Panel
from qml_cli.core.forecasting.result import Forecast

__all__ = ["Forecast", "Panel", "PanelForecast", "forecast_metric", "forecast_panel"]
