"""Prediction intervals calibrated on a series' own cross-validation errors.

Each cross-validation error is standardised by the model's own h-step standard
deviation at that origin, z = |e| / std. The interval at level L is the final
forecast's std times the split-conformal quantile of z (rank ceil((N + 1) L) of N
scores). It is never less than the normal quantile times the root mean square of z,
which is the model's variance formula calibrated on the same errors. With too few
scores for that rank the calibrated normal quantile is used alone.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri


def standardised_scores(errors: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Return |e| / std flattened per row (n, K); NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.abs(errors) / stds
    scores = np.where((stds > 0) & np.isfinite(scores), scores, np.nan)
    zero_std = (stds == 0) & np.isfinite(errors)
    scores = np.where(zero_std & (errors == 0), 0.0, scores)
    return scores.reshape(scores.shape[0], -1)


def interval_multipliers(scores: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Return the std multiplier for each row and level, shape (n, len(levels))."""
    count = np.isfinite(scores).sum(axis=1)
    ordered = np.sort(np.where(np.isfinite(scores), scores, np.inf), axis=1)
    squares = np.where(np.isfinite(scores), scores**2, 0.0).sum(axis=1)
    rms = np.where(count > 0, np.sqrt(squares / np.maximum(count, 1)), 1.0)
    multipliers = np.empty((scores.shape[0], len(levels)))
    for column, level in enumerate(levels):
        share = level / 100.0
        gaussian = ndtri(0.5 + share / 2.0) * rms
        rank = np.ceil((count + 1) * share).astype(int)
        usable = (rank <= count) & (count > 0)
        picked = ordered[
            np.arange(len(count)), np.clip(rank - 1, 0, scores.shape[1] - 1)
        ]
        multipliers[:, column] = np.where(
            usable, np.maximum(picked, gaussian), gaussian
        )
    return multipliers
