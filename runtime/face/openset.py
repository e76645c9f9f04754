"""Who is unknown: a 1:N threshold that grows stricter with the gallery.

A pair threshold (verify: one photo against one photo) lets a fraction ``F(t)`` of impostor pairs
through. Against a gallery of ``N`` enrolled embeddings a stranger is named when *any* of them is within
``t``: about ``1 - (1 - F(t))**N`` of the time, so the pair threshold names most strangers once ``N``
is in the hundreds. The 1:N threshold here is the ``t_N`` with ``1 - (1 - F(t_N))**N = FPIR`` (the
false positive identification rate asked for), ``F`` the impostor distance distribution of the
gallery itself: the distances between different enrolled people, which need no outside data and
come from the population the gallery serves. Its far lower tail (``F(t_N)`` is about ``FPIR / N``,
beyond what a few thousand distances show) is read from a normal fitted to a power ``d**k`` of them,
``k`` the one that makes their skew zero: impostor distances have a slightly heavier lower tail than a
normal, and this power straightens it (on LFW, k ~ 1.2 and the fitted 1e-5 quantile is within 0.002 of
the empirical one from 6 million pairs, where a normal on ``d`` is 0.022 too loose). The choice is
measured by benchmarks/open_set_lfw.py. The result is never looser than the pair threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

DEFAULT_FPIR = 0.01
# Fewer enrolled people than this give too few impostor distances (n(n-1)/2) to fit their spread:
# the pair threshold is used, and below this size it names a stranger at most 1 - (1 - F(pair))**MIN_PEOPLE of
# the time (5% for dlib's embedding at 0.6, F ~ 0.005; measured 5.2% at 10 people).
MIN_PEOPLE = 10
SAMPLE_ROWS = 1000  # embeddings whose pairwise distances stand for a larger gallery's (half a million pairs)
SKEW_SAMPLE = 200_000  # distances the power is chosen on (its skew settles to ~0.005 there)
POWERS = (1.0, 2.0)  # the power's range: 1 (a normal on d itself) to 2 (on squared distances)
_SEED = 0  # the sample is drawn the same way every time: the same gallery gives the same threshold


@dataclass(frozen=True)
class OpenSetThreshold:
    """A 1:N threshold and the words that say where it came from."""

    value: float
    source: str


def per_pair_rate(fpir: float, trials: int) -> float:
    """F(t_N): the per-pair false accept rate at which ``trials`` independent comparisons name a stranger
    with probability ``fpir``."""
    return float(-np.expm1(np.log1p(-fpir) / max(1, trials)))


def impostor_distances(vectors: np.ndarray, owner: np.ndarray, sample_rows: int = SAMPLE_ROWS) -> np.ndarray:
    """Distances between embeddings of different people (all pairs, or those of a fixed random sample of
    ``sample_rows`` embeddings in a larger gallery)."""
    n = len(vectors)
    if n > sample_rows:
        rows = np.sort(np.random.default_rng(_SEED).choice(n, sample_rows, replace=False))
        vectors, owner = vectors[rows], owner[rows]
    x = np.asarray(vectors, np.float64)
    squared = np.einsum("ij,ij->i", x, x)
    d2 = squared[:, None] + squared[None, :] - 2 * (x @ x.T)
    upper = np.triu(np.ones(d2.shape, bool), 1) & (owner[:, None] != owner[None, :])
    return np.sqrt(np.maximum(d2[upper], 0.0))


def normal_tail_threshold(distances: np.ndarray, rate: float) -> float:
    """The ``rate`` quantile of a normal fitted to ``distances`` (mean and standard deviation)."""
    mean, spread = float(np.mean(distances)), float(np.std(distances))
    return NormalDist(mean, max(spread, 1e-12)).inv_cdf(rate)


def _skew(logs: np.ndarray, k: float) -> float:
    x = np.exp(k * logs)
    z = (x - x.mean()) / max(float(x.std()), 1e-12)
    return float(np.mean(z ** 3))


def zero_skew_power(distances: np.ndarray) -> float:
    """The k in :data:`POWERS` whose ``distances**k`` have no skew (bisection: the skew grows with k); the
    range's end where none has."""
    logs = np.log(np.maximum(distances, 1e-12))
    if len(logs) > SKEW_SAMPLE:
        logs = np.random.default_rng(_SEED).choice(logs, SKEW_SAMPLE, replace=False)
    low, high = POWERS
    if _skew(logs, low) >= 0 or _skew(logs, high) <= 0:
        return low if _skew(logs, low) >= 0 else high
    for _ in range(16):  # to within 1.5e-5 of k
        middle = (low + high) / 2
        low, high = (middle, high) if _skew(logs, middle) < 0 else (low, middle)
    return (low + high) / 2


def power_normal_threshold(distances: np.ndarray, rate: float) -> float:
    """The ``rate`` quantile of ``distances``' distribution: a normal fitted to ``distances**k``, k from
    :func:`zero_skew_power`."""
    k = zero_skew_power(distances)
    return max(0.0, normal_tail_threshold(distances ** k, rate)) ** (1 / k)


def one_to_n_threshold(vectors: np.ndarray, owner: np.ndarray, pair: float, pair_source: str,
                       fpir: float = DEFAULT_FPIR) -> OpenSetThreshold:
    """The threshold for identifying against these enrolled embeddings (``owner``: a person number per row):
    calibrated for ``fpir`` from their own impostor distances, never looser than ``pair``; the pair
    threshold itself where too few people are enrolled to calibrate."""
    people = len(np.unique(owner))
    if people < MIN_PEOPLE:
        return OpenSetThreshold(pair, f"{pair_source}; pair threshold: {people} enrolled "
                                      f"{'person is' if people == 1 else 'people are'} too few to calibrate a "
                                      f"1:N threshold (from {MIN_PEOPLE} on)")
    rate = per_pair_rate(fpir, len(vectors))
    value = power_normal_threshold(impostor_distances(vectors, owner), rate)
    if value >= pair:
        return OpenSetThreshold(pair, f"{pair_source}; pair threshold, stricter than the 1:N one for {people} "
                                      f"enrolled people at FPIR {fpir:g}")
    return OpenSetThreshold(round(value, 6), f"1:N threshold for {people} enrolled people at FPIR {fpir:g} "
                                             f"(from the gallery's impostor distances)")
