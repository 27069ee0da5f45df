"""plot_forecast output files and the QUBO of ensemble members."""

from __future__ import annotations

import datetime as dt
import itertools
import sys

import numpy as np
import pytest

from qml_cli.core.forecasting import forecast_metric
from qml_cli.core.forecasting.ensemble import (
    choose_members,
    choose_members_exact,
    error_products,
    member_qubo,
    qubo_energies,
)
from qml_cli.core.forecasting.plot import plot_forecast
from qml_cli.errors import InvalidInput


@pytest.fixture(scope="module")
def history():
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=k) for k in range(90)]
    values = 20 + 5 * np.sin(np.arange(90) * 2 * np.pi / 7)
    return dates, values, forecast_metric(dates, values, horizon=14).to_dict()


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml")]
)
def test_plot_writes_requested_format(tmp_path, history, suffix, magic):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    dates, values, document = history
    path = plot_forecast(dates, values, document, tmp_path / f"forecast{suffix}")
    assert path.read_bytes().startswith(magic)


def test_plot_rejects_other_suffix(tmp_path, history):
    dates, values, document = history
    with pytest.raises(InvalidInput, match="unsupported plot format"):
        plot_forecast(dates, values, document, tmp_path / "forecast.pdf")


def test_plot_without_matplotlib_names_the_extra(tmp_path, history, monkeypatch):
    dates, values, document = history
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InvalidInput) as caught:
        plot_forecast(dates, values, document, tmp_path / "forecast.png")
    assert caught.value.message == "matplotlib is not installed"
    assert "qml-cli[plot]" in caught.value.hint


def random_products(models: int, seed: int) -> np.ndarray:
    errors = np.random.default_rng(seed).normal(size=(1, models, 40))
    errors[:, 1] += errors[:, 0]  # correlated pair
    return error_products(errors)


def test_qubo_energy_is_mse_of_mean_plus_constant():
    products = random_products(5, 1)[0]
    quadratic, linear, penalty = member_qubo(products, 2)
    energies = qubo_energies(quadratic, linear)
    table = np.array(list(itertools.product((0.0, 1.0), repeat=5)))
    pairs = table.sum(axis=1) == 2
    mse = np.einsum("sm,mj,sj->s", table[pairs], products, table[pairs]) / 4
    # On size-2 strings the penalty term is the constant -P k^2.
    np.testing.assert_allclose(energies[pairs], mse - penalty * 4)


def test_exact_choice_matches_brute_force():
    products = random_products(6, 2)
    chosen = choose_members_exact(products, 3)[0]
    best = min(
        itertools.combinations(range(6), 3),
        key=lambda subset: products[0][np.ix_(subset, subset)].sum(),
    )
    assert np.flatnonzero(chosen).tolist() == list(best)


def test_choose_members_reports_exact_solution():
    products = random_products(4, 3)[0]
    members, report = choose_members(products, ["a", "b", "c", "d"], 2)
    assert report["used"] == "exact"
    assert len(members) == 2
    assert report["members"] == members


def test_qaoa_reported_beside_exact_choice():
    pytest.importorskip(
        "qml_cli.quantum.solve", reason="the quantum solver is not present"
    )
    products = random_products(4, 4)[0]
    members, report = choose_members(
        products, ["a", "b", "c", "d"], 2, use_quantum=True
    )
    assert report["qaoa"]["status"] == "ran"
    assert report["qaoa"]["energy"] >= report["exact"]["energy"] - 1e-9
    assert report["used"] in ("exact", "qaoa")
    assert len(members) == 2
