"""Synthetic series of known structure for the insight tests."""

from __future__ import annotations

import datetime as dt

import numpy as np

START = dt.datetime(2024, 1, 1)  # a Monday


def days(n: int, start: dt.datetime = START) -> list[dt.datetime]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def hours(n: int, start: dt.datetime = START) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=i) for i in range(n)]


def noise(n: int, seed: int, scale: float = 1.0, level: float = 100.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0.0, scale, n)


def weekly(n: int, effects: tuple[float, ...]) -> np.ndarray:
    """Day-of-week effects indexed Monday=0 for a series starting on START."""
    return np.array([effects[i % 7] for i in range(n)])
