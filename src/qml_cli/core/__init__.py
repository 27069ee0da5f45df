"""The qml library: settings, database, ledger, data, forecasting, jobs, operations.

Nothing here imports Typer or Rich, so a worker or an HTTP API can use it unchanged.
"""
