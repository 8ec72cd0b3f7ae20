"""Interval estimates and bounded-memory accumulators for outcomes.

Proportions get Wilson (default), Clopper-Pearson or Jeffreys intervals;
numeric outcomes a mean with a normal-theory interval and quantiles from an
exact histogram (integer outcomes) or a fine log-binned one (times).
Accumulators merge chunk by chunk, so memory does not grow with episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

CIMethod = Literal["wilson", "clopper-pearson", "jeffreys"]
CI_METHODS = ("wilson", "clopper-pearson", "jeffreys")
QUANTILES = (0.5, 0.9, 0.99)


def _z(confidence: float) -> float:
    # the standard library's inverse normal CDF: no scipy import on the hot start-up path
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def proportion_interval(k: int, n: int, confidence: float = 0.95, method: CIMethod = "wilson") -> tuple[float, float]:
    """Confidence interval for a binomial proportion ``k / n``.

    Parameters
    ----------
    k, n : int
        Successes and trials (``0 <= k <= n``, ``n > 0``).
    confidence : float
        Two-sided level in (0, 1).
    method : {"wilson", "clopper-pearson", "jeffreys"}
        Interval family.

    Returns
    -------
    (float, float)
        Lower and upper bounds, within [0, 1].
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be in [0, n={n}]")
    alpha = 1.0 - confidence
    if method == "wilson":
        z = _z(confidence)
        p = k / n
        den = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        lo, hi = max(0.0, centre - half), min(1.0, centre + half)
        # exact ends: no rounding away from the boundary
        if k == 0:
            lo = 0.0
        if k == n:
            hi = 1.0
        return (lo, hi)
    from scipy.stats import beta

    if method == "clopper-pearson":
        lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
        return (lo, hi)
    if method == "jeffreys":
        lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k + 0.5, n - k + 0.5))
        hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 0.5, n - k + 0.5))
        return (lo, hi)
    raise ValueError(f"unknown interval method {method!r}; allowed: {', '.join(CI_METHODS)}")


@dataclass
class ProportionAcc:
    """Counts of a 0/1 outcome."""

    count: int = 0
    n: int = 0

    def add(self, x: np.ndarray) -> None:
        """Add a chunk of 0/1 values."""
        self.count += int(np.count_nonzero(x))
        self.n += int(x.shape[0])

    def estimate(self, confidence: float = 0.95, method: CIMethod = "wilson") -> dict:
        """``{"count", "n", "p", "ci_low", "ci_high"}``."""
        lo, hi = proportion_interval(self.count, self.n, confidence, method)
        return {"count": self.count, "n": self.n, "p": self.count / self.n if self.n else float("nan"),
                "ci_low": lo, "ci_high": hi}  # fmt: skip


# log-binned histogram for non-negative real outcomes: BINS_PER_DECADE bins per decade from 10**LOG_LO
BINS_PER_DECADE = 400
LOG_LO, LOG_HI = -3, 16
NBINS = (LOG_HI - LOG_LO) * BINS_PER_DECADE


#: the moments are merged over fixed blocks of this many values, in episode order, so that
#: the chunk size (and so the thread count) cannot change a single bit of the mean or sd
MOMENT_BLOCK = 4096


def _merge_moments(n: int, mean: float, m2: float, x: np.ndarray) -> tuple[int, float, float]:
    """Chan et al.'s pairwise update of (count, mean, sum of squared deviations) with ``x``."""
    m = int(x.shape[0])
    cm = float(np.mean(x))
    c2 = float(np.sum((x - cm) ** 2))
    tot = n + m
    d = cm - mean
    return tot, mean + d * m / tot, m2 + c2 + d * d * n * m / tot


@dataclass
class NumericAcc:
    """Moments and a histogram of a numeric outcome, mergeable chunk by chunk.

    ``integer=True`` keeps exact value counts (outcomes that are whole
    numbers with a modest range); otherwise values go into log-spaced bins
    (relative width ``10**(1/400) - 1``, about 0.6%), with zero kept apart.
    Every result is the same bit for bit however the values are split into
    chunks: moments are merged over fixed blocks of ``MOMENT_BLOCK`` values.
    """

    integer: bool
    n: int = 0
    lo: float = math.inf
    hi: float = -math.inf
    counts: dict = field(default_factory=dict)
    zeros: int = 0
    hist: np.ndarray | None = None
    # moments of the full blocks so far, and the values of the open block
    _bn: int = field(default=0, repr=False)
    _bmean: float = field(default=0.0, repr=False)
    _bm2: float = field(default=0.0, repr=False)
    _open: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def _moments(self) -> tuple[int, float, float]:
        if self._open.shape[0] == 0:
            return self._bn, self._bmean, self._bm2
        return _merge_moments(self._bn, self._bmean, self._bm2, self._open)

    @property
    def mean(self) -> float:
        """Mean of all values added."""
        return self._moments()[1]

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean."""
        return self._moments()[2]

    def add(self, x: np.ndarray) -> None:
        """Add a chunk of values."""
        x = np.asarray(x, dtype=np.float64)
        m = int(x.shape[0])
        if m == 0:
            return
        self.n += m
        buf = np.concatenate([self._open, x])
        full = buf.shape[0] - buf.shape[0] % MOMENT_BLOCK
        for s in range(0, full, MOMENT_BLOCK):
            self._bn, self._bmean, self._bm2 = _merge_moments(
                self._bn, self._bmean, self._bm2, buf[s : s + MOMENT_BLOCK]
            )
        self._open = buf[full:].copy()
        self.lo = min(self.lo, float(np.min(x)))
        self.hi = max(self.hi, float(np.max(x)))
        if self.integer:
            vals, cnt = np.unique(x, return_counts=True)
            for v, c in zip(vals.tolist(), cnt.tolist()):
                self.counts[v] = self.counts.get(v, 0) + c
        else:
            if self.hist is None:
                self.hist = np.zeros(NBINS, dtype=np.int64)
            pos = x[x > 0]
            self.zeros += m - int(pos.shape[0])
            idx = np.clip(((np.log10(pos) - LOG_LO) * BINS_PER_DECADE).astype(np.int64), 0, NBINS - 1)
            self.hist += np.bincount(idx, minlength=NBINS)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (exact for integer outcomes, bin mid-point otherwise)."""
        if self.n == 0:
            return float("nan")
        rank = q * (self.n - 1)
        target = int(math.floor(rank)) + 1  # 1-based order statistic (lower)
        if self.integer:
            acc = 0
            for v in sorted(self.counts):
                acc += self.counts[v]
                if acc >= target:
                    return float(v)
            return self.hi
        if target <= self.zeros:
            return 0.0
        assert self.hist is not None
        cum = np.cumsum(self.hist) + self.zeros
        b = int(np.searchsorted(cum, target))
        mid = 10 ** (LOG_LO + (b + 0.5) / BINS_PER_DECADE)
        return float(min(max(mid, self.lo), self.hi))

    def estimate(self, confidence: float = 0.95) -> dict:
        """``{"mean", "ci_low", "ci_high", "sd", "n", "min", "max", "quantiles"}``."""
        sd = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        half = _z(confidence) * sd / math.sqrt(self.n) if self.n > 0 else float("nan")
        return {
            "mean": self.mean, "ci_low": self.mean - half, "ci_high": self.mean + half, "sd": sd, "n": self.n,
            "min": self.lo, "max": self.hi, "quantiles": {str(q): self.quantile(q) for q in QUANTILES},
        }  # fmt: skip
