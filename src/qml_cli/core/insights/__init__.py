"""Insight analyses of a metric: trend, seasonality, anomalies, level shifts,
correlation, segments, recommendations, prediction and optimisation.

`analysis.analyze` runs them on plain arrays; nothing here touches a database.
"""
