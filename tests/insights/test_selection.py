"""The QUBO selection of findings against exact enumeration of subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qml_cli.core.insights.finding import Finding
from qml_cli.core.insights.selection import (
    build_qubo,
    redundancy,
    select,
    slack_weights,
)


def finding(key, kind, relevance, index=None, cites=()):
    evidence = {} if index is None else {"index": index}
    return Finding(
        type=kind,
        key=key,
        title=key,
        message=key,
        confidence=0.99,
        relevance=relevance,
        evidence=evidence,
        cites=list(cites),
    )


def subset_score(items, chosen):
    score = sum(items[i].relevance for i in chosen)
    for i, j in itertools.combinations(chosen, 2):
        score -= redundancy(items[i], items[j]) * min(
            items[i].relevance, items[j].relevance
        )
    return score


def best_subset(items, max_n):
    best = (0.0, ())
    for size in range(1, max_n + 1):
        for chosen in itertools.combinations(range(len(items)), size):
            score = subset_score(items, chosen)
            if score > best[0] + 1e-12:
                best = (score, chosen)
    return [items[i].key for i in best[1]]


def random_findings(seed, n):
    rng = np.random.default_rng(seed)
    kinds = [
        "trend",
        "seasonality",
        "anomaly",
        "changepoint",
        "recommendation",
        "segmentation",
        "prediction",
    ]
    items = []
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        index = int(rng.integers(0, 20)) if kind in ("anomaly", "changepoint") else None
        items.append(finding(f"{kind}:{i}", kind, float(rng.uniform(0.1, 1.0)), index))
    for i, item in enumerate(items):
        if item.type == "recommendation" and i > 0:
            item.cites = [items[i - 1].key]
    return items


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("max_n", [1, 2, 3, 5])
def test_select_matches_subset_enumeration(seed, max_n):
    items = random_findings(seed, 8)
    chosen = select(items, max_n).chosen
    assert sorted(chosen) == sorted(best_subset(items, max_n))


def test_select_respects_max_n():
    items = [finding(f"trend:{i}", f"kind{i}", 0.9) for i in range(9)]
    selection = select(items, 4)
    assert len(selection.chosen) == 4


def test_select_drops_redundant_finding():
    items = [
        finding("anomaly:a", "anomaly", 0.9, index=10),
        finding("anomaly:b", "anomaly", 0.8, index=11),
        finding("trend", "trend", 0.3),
    ]
    # {a, b} scores 0.9 + 0.8 - 0.9 * 0.8 = 0.98, below {a, trend} at 1.2.
    assert select(items, 2).chosen == ["anomaly:a", "trend"]


def test_select_skips_low_confidence_and_absent():
    items = [
        finding("trend", "trend", 0.9),
        finding("changepoint:none", "changepoint", 0.5),
    ]
    items[1].detected = False
    items.append(finding("seasonality:7", "seasonality", 0.8))
    items[2].low_confidence = True
    assert select(items, 5).chosen == ["trend"]


def test_select_reports_disabled_quantum():
    selection = select([finding("trend", "trend", 0.9)], 5)
    assert selection.quantum == {"status": "disabled"}


@pytest.mark.parametrize("max_n", [1, 2, 3, 4, 5, 6, 7, 12])
def test_slack_weights_sum_to_max_n(max_n):
    assert sum(slack_weights(max_n)) == max_n


def test_qubo_energy_is_minus_score_when_feasible():
    items = random_findings(3, 7)
    model = build_qubo(items, 3)
    chosen = (0, 2, 5)
    bits = [1 if i in chosen else 0 for i in range(7)]
    slack = [0] * (model.num_variables - 7)  # three chosen: slack 0
    assert model.energy(bits + slack) == pytest.approx(-subset_score(items, chosen))


def test_select_reports_qaoa_beside_exact():
    pytest.importorskip("qml_cli.quantum.solve")
    items = random_findings(4, 6)
    selection = select(items, 2, use_quantum=True, max_iterations=60)
    quantum = selection.quantum
    assert quantum["status"] == "ok"
    assert quantum["energy"] >= selection.exact["energy"] - 1e-9
    assert 0.0 < quantum["approximation_ratio"] <= 1.0
    assert 0.0 <= quantum["optimum_probability"] <= 1.0
    assert len(quantum["chosen"]) <= 2
