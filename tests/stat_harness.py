"""Independent reference computations for the interval tests in ``test_stats.py``.

Nothing here calls the code under test: Wilson limits are found by root-finding on
the score equation (not the closed form), coverage is summed over the exact binomial
or multinomial distribution, and the bootstrap distribution of an order statistic
is written in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import gammaln
from scipy.stats import binom, norm


# --------------------------------------------------------------------------- Newcombe (1998) by brute force
def wilson_by_roots(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson limits as the roots in p of ``(k/n - p)^2 = z^2 p (1 - p) / n`` (Wilson 1927)."""
    z = norm.ppf(0.5 + confidence / 2)
    ph = k / n

    def f(p: float) -> float:
        return (ph - p) ** 2 - z * z * p * (1 - p) / n

    # f > 0 at a boundary the estimate is not on, f < 0 at the estimate when it is inside; an
    # estimate of 0 or 1 is itself a root, so bracket from a step eps inside it (f < 0 there:
    # eps is far below the other root, z^2 / (n + z^2) from the boundary, and far above underflow)
    eps = 1e-9 * z * z / (n + z * z)
    lo = 0.0 if k == 0 else brentq(f, 0.0, ph if k < n else 1.0 - eps, xtol=1e-15, rtol=1e-15)
    hi = 1.0 if k == n else brentq(f, ph if k > 0 else eps, 1.0, xtol=1e-15, rtol=1e-15)
    return lo, hi


def newcombe_unpaired(k1: int, n1: int, k2: int, n2: int, confidence: float) -> tuple[float, float, float]:
    """Newcombe (1998, Stat Med 17:873) method 10, eq. for L and U, from root-found Wilson limits."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_roots(k1, n1, confidence)
    l2, u2 = wilson_by_roots(k2, n2, confidence)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(p2 - l2, u1 - p1)


def newcombe_paired(e: int, f: int, g: int, h: int, confidence: float) -> tuple[float, float, float]:
    """Newcombe (1998, Stat Med 17:2635) method 10 in the paper's notation (e, f, g, h).

    e: both positive, f: first only, g: second only, h: neither. The correlation
    ``phi = C / sqrt(ABCD)`` over the margins A..D, with ``C = eh - fg - n/2`` when
    ``eh - fg > n/2``, 0 when ``0 <= eh - fg <= n/2``, ``eh - fg`` when negative; 0 when a margin is 0.
    """
    n = e + f + g + h
    p1, p2 = (e + f) / n, (e + g) / n
    l1, u1 = wilson_by_roots(e + f, n, confidence)
    l2, u2 = wilson_by_roots(e + g, n, confidence)
    margins = [e + f, g + h, e + g, f + h]
    if 0 in margins:
        phi = 0.0
    else:
        c = e * h - f * g
        c = c - n / 2 if c > n / 2 else (0.0 if c >= 0 else c)
        phi = c / math.sqrt(math.prod(float(m) for m in margins))
    dl2 = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    du2 = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    d = (f - g) / n
    return d, max(-1.0, d - math.sqrt(dl2)), min(1.0, d + math.sqrt(du2))


def mcnemar_by_sum(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail at 1/2, in exact integers, capped at 1."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**m)


# --------------------------------------------------------------------------- exact coverage
def interval_table(interval: Callable[[int, int], tuple[float, float]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The interval for every outcome k = 0..n, as two arrays."""
    ends = np.array([interval(k, n) for k in range(n + 1)])
    return ends[:, 0], ends[:, 1]


def exact_coverage(lo: np.ndarray, hi: np.ndarray, n: int, p: np.ndarray | float) -> np.ndarray:
    """``P(lo[K] <= p <= hi[K])`` for ``K ~ Binomial(n, p)``, summed over k (vectorised over ``p``)."""
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    k = np.arange(n + 1)
    pmf = binom.pmf(k[None, :], n, p[:, None])
    inside = (lo[None, :] <= p[:, None]) & (p[:, None] <= hi[None, :])
    return (pmf * inside).sum(axis=1)


def all_tables(n: int) -> np.ndarray:
    """Every 2x2 table (n11, n10, n01, n00) of non-negative counts adding up to ``n``, one per row."""
    rows = [(a, b, c, n - a - b - c) for a in range(n + 1) for b in range(n + 1 - a) for c in range(n + 1 - a - b)]
    return np.array(rows, dtype=np.int64)


def multinomial_pmf(tables: np.ndarray, probs: tuple[float, ...]) -> np.ndarray:
    """Multinomial probabilities of each row of ``tables`` (cells with probability 0 must be empty)."""
    n = int(tables[0].sum())
    logp = gammaln(n + 1) - gammaln(tables + 1).sum(axis=1)
    for j, pj in enumerate(probs):
        if pj > 0:
            logp = logp + tables[:, j] * math.log(pj)
        else:
            logp = np.where(tables[:, j] > 0, -np.inf, logp)
    return np.exp(logp)


# --------------------------------------------------------------------------- the bootstrap of an order statistic
def bootstrap_cdf(vals: np.ndarray, cnts: np.ndarray, rank: int, x: float) -> tuple[float, float]:
    """``(P(T < x), P(T <= x))`` for T the ``rank``-th smallest (1-based) of a resample with replacement.

    A resample of size n has ``Binomial(n, F(x))`` values at or below x, where F is the
    empirical distribution function; ``T <= x`` exactly when that count reaches ``rank``.
    """
    n = int(cnts.sum())
    cum = np.concatenate([[0], np.cumsum(cnts)])
    f_le = cum[np.searchsorted(vals, x, side="right")] / n
    f_lt = cum[np.searchsorted(vals, x, side="left")] / n
    return float(binom.sf(rank - 1, n, f_lt)), float(binom.sf(rank - 1, n, f_le))
