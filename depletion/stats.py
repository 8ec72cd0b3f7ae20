"""Interval estimates and bounded-memory accumulators for outcomes.

Proportions get Wilson (default), Clopper-Pearson or Jeffreys intervals;
numeric outcomes a mean with a normal-theory interval and quantiles from an
exact histogram (integer outcomes) or a fine log-binned one (times), with
distribution-free (order statistic) or bootstrap intervals for the quantiles.
Two policies run on the same episodes (common random numbers) are compared
with paired intervals: Newcombe's hybrid score interval and McNemar's exact
test for a difference of proportions, a normal interval on the mean paired
difference for numbers; unpaired versions serve independent runs.
Accumulators merge chunk by chunk, so memory does not grow with episodes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

CIMethod = Literal["wilson", "clopper-pearson", "jeffreys"]
CI_METHODS = ("wilson", "clopper-pearson", "jeffreys")
QuantileMethod = Literal["order", "bootstrap"]
QUANTILE_METHODS = ("order", "bootstrap")
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


def _add_blocks(
    bn: int, bmean: float, bm2: float, open_: np.ndarray, x: np.ndarray
) -> tuple[int, float, float, np.ndarray]:
    """Append ``x`` to the open block and merge every block of ``MOMENT_BLOCK`` values it completes.

    Returns the new (count, mean, sum of squared deviations) of the full blocks and the new open block.
    """
    buf = np.concatenate([open_, x])
    full = buf.shape[0] - buf.shape[0] % MOMENT_BLOCK
    for s in range(0, full, MOMENT_BLOCK):
        bn, bmean, bm2 = _merge_moments(bn, bmean, bm2, buf[s : s + MOMENT_BLOCK])
    return bn, bmean, bm2, buf[full:].copy()


def _close_blocks(bn: int, bmean: float, bm2: float, open_: np.ndarray) -> tuple[int, float, float]:
    """Moments of the full blocks merged with the open one (which stays open)."""
    if open_.shape[0] == 0:
        return bn, bmean, bm2
    return _merge_moments(bn, bmean, bm2, open_)


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
        return _close_blocks(self._bn, self._bmean, self._bm2, self._open)

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
        self._bn, self._bmean, self._bm2, self._open = _add_blocks(self._bn, self._bmean, self._bm2, self._open, x)
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

    def _bin_value(self, b: int) -> float:
        """The value that stands for log bin ``b``: its mid-point, clamped to [lo, hi]."""
        mid = 10 ** (LOG_LO + (b + 0.5) / BINS_PER_DECADE)
        return float(min(max(mid, self.lo), self.hi))

    def _order_stats(self, ranks: list[int]) -> list[float]:
        """The order statistics of 1-based ``ranks`` (each in [1, n]) as the histogram holds them."""
        if self.integer:
            vals = sorted(self.counts)
            cum = np.cumsum([self.counts[v] for v in vals])
            return [float(vals[int(np.searchsorted(cum, k))]) for k in ranks]
        assert self.hist is not None
        cum = np.cumsum(self.hist) + self.zeros
        return [0.0 if k <= self.zeros else self._bin_value(int(np.searchsorted(cum, k))) for k in ranks]

    def _support(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values as :meth:`quantile` reads them, ascending, and their counts."""
        if self.integer:
            vals = sorted(self.counts)
            return np.array(vals, dtype=np.float64), np.array([self.counts[v] for v in vals], dtype=np.int64)
        bins = [] if self.hist is None else np.flatnonzero(self.hist).tolist()
        v = [0.0] * (self.zeros > 0) + [self._bin_value(b) for b in bins]
        c = [self.zeros] * (self.zeros > 0) + ([] if self.hist is None else self.hist[bins].tolist())
        return np.array(v, dtype=np.float64), np.array(c, dtype=np.int64)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (exact for integer outcomes, bin mid-point otherwise).

        The lower order statistic number ``floor(q (n - 1)) + 1`` (1-based), like
        ``np.quantile(x, q, method="lower")``.
        """
        if self.n == 0:
            return float("nan")
        return self._order_stats([int(math.floor(q * (self.n - 1))) + 1])[0]

    def estimate(self, confidence: float = 0.95) -> dict:
        """``{"mean", "ci_low", "ci_high", "sd", "n", "min", "max", "quantiles", "quantile_ci"}``.

        ``quantile_ci`` maps each of ``QUANTILES`` to its distribution-free interval
        ``[lo, hi]`` (:func:`quantile_interval` with ``method="order"``).
        """
        sd = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        half = _z(confidence) * sd / math.sqrt(self.n) if self.n > 0 else float("nan")
        return {
            "mean": self.mean, "ci_low": self.mean - half, "ci_high": self.mean + half, "sd": sd, "n": self.n,
            "min": self.lo, "max": self.hi, "quantiles": {str(q): self.quantile(q) for q in QUANTILES},
            "quantile_ci": {str(q): list(quantile_interval(self, q, confidence)) for q in QUANTILES},
        }  # fmt: skip


# --------------------------------------------------------------------------- quantile intervals
#: ``quantile_interval(method="bootstrap")`` hands up to this many values, expanded from the
#: histogram, to ``scipy.stats.bootstrap``; above it, it resamples the histogram counts directly
BOOTSTRAP_EXPAND_MAX = 200_000
# values resampled at once (a batch of resamples is about this many float64s or counts)
_BOOT_BATCH_VALUES = 1 << 22


@functools.lru_cache(maxsize=1024)
def _order_ranks(n: int, q: float, confidence: float) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` of the distribution-free interval ``[X_(l), X_(u)]`` for the ``q`` quantile.

    With ``B ~ Binomial(n, q)`` (the number of values at or below the true quantile, for
    continuous data), ``l`` is the largest rank with ``P(B < l) <= alpha / 2`` and ``u`` the
    smallest with ``P(B >= u) <= alpha / 2``, so the coverage ``P(l <= B < u)`` is at least
    ``confidence``. ``l = 0`` or ``u = n + 1`` means that end is unbounded at this ``n``.
    """
    from scipy.stats import binom

    a = (1.0 - confidence) / 2.0
    return int(binom.ppf(a, n, q)), int(binom.ppf(1.0 - a, n, q)) + 1


def _bootstrap_counts(cnts: np.ndarray, rank: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into the support of the ``rank`` order statistic of ``n_resamples`` multinomial resamples."""
    n = int(cnts.sum())
    p = cnts / n
    out = np.empty(n_resamples, dtype=np.int64)
    batch = max(1, _BOOT_BATCH_VALUES // cnts.shape[0])
    for s in range(0, n_resamples, batch):
        m = min(batch, n_resamples - s)
        cum = np.cumsum(rng.multinomial(n, p, size=m), axis=1)
        out[s : s + m] = np.count_nonzero(cum < rank, axis=1)  # the first support index with cum >= rank
    return out


def quantile_interval(
    acc: NumericAcc,
    q: float,
    confidence: float = 0.95,
    method: QuantileMethod = "order",
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Confidence interval for the ``q`` quantile of a numeric outcome, from its accumulator.

    Parameters
    ----------
    acc : NumericAcc
        The values (exact counts for integer outcomes, log bins otherwise; values are read as
        :meth:`NumericAcc.quantile` reads them: bin mid-points clamped to [min, max]).
    q : float
        Quantile level in [0, 1].
    confidence : float
        Two-sided level in (0, 1).
    method : {"order", "bootstrap"}
        ``"order"``: the distribution-free interval ``[X_(l), X_(u)]`` between two order
        statistics whose ranks come from the Binomial(n, q) quantiles; its coverage is at
        least ``confidence`` for continuous data (and conservative for discrete data), up to
        the bin width (about 0.6%) for real outcomes. It is deterministic and reads the
        histogram in place. An end that ``n`` values cannot bound at this level (for
        instance the upper end of a 0.99 quantile from 20 values) is ``-inf`` or ``inf``.
        ``"bootstrap"``: the percentile bootstrap of the lower order-statistic quantile
        (:meth:`NumericAcc.quantile`). Up to ``BOOTSTRAP_EXPAND_MAX`` values it expands the
        histogram and calls ``scipy.stats.bootstrap``; above, it draws each resample as
        multinomial counts over the histogram, the same bootstrap distribution in bounded memory.
    n_resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap's ``numpy.random.Generator``: the result is reproducible.

    Returns
    -------
    (float, float)
        Lower and upper ends; ``(nan, nan)`` when ``acc`` is empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q} must be in [0, 1]")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    if method not in QUANTILE_METHODS:
        raise ValueError(f"unknown quantile interval method {method!r}; allowed: {', '.join(QUANTILE_METHODS)}")
    n = acc.n
    if n == 0:
        return (float("nan"), float("nan"))
    if method == "order":
        l, u = _order_ranks(n, q, confidence)
        lo_hi = acc._order_stats([max(l, 1), min(u, n)])
        return (lo_hi[0] if l >= 1 else -math.inf, lo_hi[1] if u <= n else math.inf)
    vals, cnts = acc._support()
    rng = np.random.default_rng(seed)
    if n <= BOOTSTRAP_EXPAND_MAX:
        import inspect

        from scipy.stats import bootstrap

        def statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.quantile(x, q, axis=axis, method="lower")

        # scipy >= 1.15 takes ``rng``; older releases ``random_state``
        key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
        res = bootstrap(
            (np.repeat(vals, cnts),), statistic, n_resamples=n_resamples, method="percentile",
            confidence_level=confidence, vectorized=True, batch=max(1, _BOOT_BATCH_VALUES // n), **{key: rng},
        )  # fmt: skip
        return (float(res.confidence_interval.low), float(res.confidence_interval.high))
    theta = vals[_bootstrap_counts(cnts, int(math.floor(q * (n - 1))) + 1, n_resamples, rng)]
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(theta, [a, 1.0 - a])
    return (float(lo), float(hi))


# --------------------------------------------------------------------------- comparing two policies
def paired_diff_interval(
    n11: int, n10: int, n01: int, n00: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Difference ``p_a - p_b`` of two proportions measured on the same units, with its interval.

    Newcombe's (1998, Stat. Med. 17:2635) method 10: the hybrid score interval that
    combines the Wilson limits of the two margins, corrected for their correlation by
    ``phi = C / sqrt(product of the four margins)``, where ``C = n11 n00 - n10 n01`` reduced
    by ``n / 2`` towards 0 when positive (``max(C - n / 2, 0)``), and ``phi = 0`` when any
    margin is 0. Positive correlation, as common random numbers give, narrows the interval.

    Parameters
    ----------
    n11, n10, n01, n00 : int
        Units with a = 1 and b = 1, a only, b only, neither.
    confidence : float
        Two-sided level in (0, 1).

    Returns
    -------
    (float, float, float)
        ``(d, lo, hi)`` with ``lo <= d <= hi`` within [-1, 1]; ``(nan, -1, 1)`` when there are no units.
    """
    if min(n11, n10, n01, n00) < 0:
        raise ValueError(f"counts must be non-negative: {(n11, n10, n01, n00)}")
    n = n11 + n10 + n01 + n00
    if n == 0:
        return (float("nan"), -1.0, 1.0)
    ka, kb = n11 + n10, n11 + n01
    pa, pb = ka / n, kb / n
    la, ua = proportion_interval(ka, n, confidence, "wilson")
    lb, ub = proportion_interval(kb, n, confidence, "wilson")
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)  # exact (Python integers)
    phi = 0.0
    if margins > 0:
        cross = n11 * n00 - n10 * n01
        phi = (max(cross - n / 2, 0.0) if cross > 0 else cross) / math.sqrt(margins)
    d = (n10 - n01) / n
    dl = math.sqrt(max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2))
    du = math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    return (d, max(-1.0, d - dl), min(1.0, d + du))


def unpaired_diff_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Difference ``k1 / n1 - k2 / n2`` of two independent proportions, with its interval.

    Newcombe's (1998, Stat. Med. 17:873) method 10: the Wilson limits of the two
    proportions combined by squaring and adding their distances from the estimates.

    Returns
    -------
    (float, float, float)
        ``(d, lo, hi)`` within [-1, 1]; ``(nan, -1, 1)`` when either sample is empty.
    """
    if n1 < 0 or n2 < 0:
        raise ValueError(f"sample sizes must be non-negative: n1={n1}, n2={n2}")
    if n1 == 0 or n2 == 0:
        return (float("nan"), -1.0, 1.0)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = proportion_interval(k1, n1, confidence, "wilson")
    l2, u2 = proportion_interval(k2, n2, confidence, "wilson")
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    return (d, max(-1.0, lo), min(1.0, hi))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    The exact binomial test of ``b`` successes in ``b + c`` trials at ``p = 1/2``; 1.0 when there is no discordant pair.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative: b={b}, c={c}")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(b), int(b + c), 0.5).pvalue)


@dataclass
class PairAcc:
    """Joint counts of a 0/1 outcome under two policies a and b on the same episodes."""

    n11: int = 0
    n10: int = 0
    n01: int = 0
    n00: int = 0

    @property
    def n(self) -> int:
        """Number of pairs."""
        return self.n11 + self.n10 + self.n01 + self.n00

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Add a chunk of aligned 0/1 values (``a[i]`` and ``b[i]`` from the same episode)."""
        a = np.asarray(a) != 0
        b = np.asarray(b) != 0
        if a.shape != b.shape:
            raise ValueError(f"a and b must be aligned: shapes {a.shape} and {b.shape}")
        both, na, nb = int(np.count_nonzero(a & b)), int(np.count_nonzero(a)), int(np.count_nonzero(b))
        self.n11 += both
        self.n10 += na - both
        self.n01 += nb - both
        self.n00 += int(a.size) - na - nb + both

    def estimate(self, confidence: float = 0.95) -> dict:
        """``{"diff", "ci_low", "ci_high", "n", "n11", "n10", "n01", "n00", "mcnemar_p", "p_a", "p_b"}``.

        ``diff = p_a - p_b`` with Newcombe's paired interval (:func:`paired_diff_interval`) and
        the exact McNemar p-value of ``p_a = p_b`` (:func:`mcnemar_exact`).
        """
        n = self.n
        d, lo, hi = paired_diff_interval(self.n11, self.n10, self.n01, self.n00, confidence)
        pa = (self.n11 + self.n10) / n if n else float("nan")
        pb = (self.n11 + self.n01) / n if n else float("nan")
        return {"diff": d, "ci_low": lo, "ci_high": hi, "n": n,
                "n11": self.n11, "n10": self.n10, "n01": self.n01, "n00": self.n00,
                "mcnemar_p": mcnemar_exact(self.n10, self.n01), "p_a": pa, "p_b": pb}  # fmt: skip


@dataclass
class DiffAcc:
    """Paired differences ``d = a - b`` of a numeric outcome under two policies on the same episodes.

    Moments of ``d`` merge over fixed blocks of ``MOMENT_BLOCK`` values, as in
    :class:`NumericAcc`, so every result is the same bit for bit however the pairs are chunked.
    """

    n: int = 0
    _bn: int = field(default=0, repr=False)
    _bmean: float = field(default=0.0, repr=False)
    _bm2: float = field(default=0.0, repr=False)
    _open: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Add a chunk of aligned values (``a[i]`` and ``b[i]`` from the same episode)."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"a and b must be aligned: shapes {a.shape} and {b.shape}")
        d = (a - b).ravel()
        if d.shape[0] == 0:
            return
        self.n += int(d.shape[0])
        self._bn, self._bmean, self._bm2, self._open = _add_blocks(self._bn, self._bmean, self._bm2, self._open, d)

    def estimate(self, confidence: float = 0.95) -> dict:
        """``{"diff", "ci_low", "ci_high", "sd", "n"}``: the mean difference with a normal-theory interval.

        ``sd`` is the standard deviation of the differences (0 for a single pair, as in
        :meth:`NumericAcc.estimate`); everything else is nan when there are no pairs.
        """
        nan = float("nan")
        if self.n == 0:
            return {"diff": nan, "ci_low": nan, "ci_high": nan, "sd": nan, "n": 0}
        _, mean, m2 = _close_blocks(self._bn, self._bmean, self._bm2, self._open)
        sd = math.sqrt(m2 / (self.n - 1)) if self.n > 1 else 0.0
        half = _z(confidence) * sd / math.sqrt(self.n)
        return {"diff": mean, "ci_low": mean - half, "ci_high": mean + half, "sd": sd, "n": self.n}


def unpaired_mean_diff(acc_a: NumericAcc, acc_b: NumericAcc, confidence: float = 0.95) -> dict:
    """Difference of the means of two independent numeric samples, with a normal interval.

    Welch's standard error ``sqrt(s_a^2 / n_a + s_b^2 / n_b)`` with the normal quantile (as
    :meth:`NumericAcc.estimate` uses).

    Returns
    -------
    dict
        ``{"diff", "ci_low", "ci_high", "sd", "n"}`` like :meth:`DiffAcc.estimate`: ``sd`` is
        ``sqrt(s_a^2 + s_b^2)``, the standard deviation of one difference of independent draws
        (what the paired ``sd`` would be without correlation), ``n`` is ``min(n_a, n_b)``.
    """
    na, nb = acc_a.n, acc_b.n
    nan = float("nan")
    if na == 0 or nb == 0:
        return {"diff": nan, "ci_low": nan, "ci_high": nan, "sd": nan, "n": min(na, nb)}
    va = acc_a.m2 / (na - 1) if na > 1 else 0.0
    vb = acc_b.m2 / (nb - 1) if nb > 1 else 0.0
    d = acc_a.mean - acc_b.mean
    half = _z(confidence) * math.sqrt(va / na + vb / nb)
    return {"diff": d, "ci_low": d - half, "ci_high": d + half, "sd": math.sqrt(va + vb), "n": min(na, nb)}


# --------------------------------------------------------------------------- precision targets
def halfwidth(est: dict) -> float:
    """Half the width of an estimate's interval, ``(ci_high - ci_low) / 2`` (any estimate dict here)."""
    return (est["ci_high"] - est["ci_low"]) / 2.0


def meets_target(est: dict, target: float, relative: bool) -> bool:
    """Whether an estimate is as precise as asked.

    Parameters
    ----------
    est : dict
        An estimate dict (of a proportion, a numeric outcome or a difference).
    target : float
        Largest acceptable half-width: absolute, or relative to ``|estimate|``.
    relative : bool
        Compare the half-width with ``target * |estimate|``, the estimate being ``est["p"]``,
        ``est["mean"]`` or ``est["diff"]``. An estimate of 0 meets a relative target only with
        a zero half-width.

    Returns
    -------
    bool
        False also for a nan half-width and for an estimate from fewer than two values
        (``est["n"] < 2``), whose interval says nothing about the spread.
    """
    hw = halfwidth(est)
    n = est.get("n")
    if n is not None and n < 2:
        return False
    if not relative:
        return bool(hw <= target)
    centre = est["p"] if "p" in est else est["mean"] if "mean" in est else est["diff"]
    return bool(hw <= target * abs(centre))
