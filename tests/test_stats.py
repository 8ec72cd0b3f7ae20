"""Interval estimates and accumulators in ``depletion.stats`` (MODEL.md section 9).

Intervals are checked against SciPy's independent implementations, the worked
examples published with them, brute-force re-implementations (``stat_harness.py``),
exact coverage summed over the sampling distribution and simulated coverage;
accumulators against NumPy on the whole array.
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest
from scipy.special import betaln, gammaln
from scipy.stats import beta, binom, binomtest, norm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import stat_harness as H  # noqa: E402

from depletion import stats  # noqa: E402
from depletion.stats import (  # noqa: E402
    BINS_PER_DECADE,
    CI_METHODS,
    LOG_LO,
    MOMENT_BLOCK,
    QUANTILES,
    DiffAcc,
    NumericAcc,
    PairAcc,
    ProportionAcc,
    halfwidth,
    mcnemar_exact,
    meets_target,
    paired_diff_interval,
    proportion_interval,
    quantile_interval,
    unpaired_diff_interval,
    unpaired_mean_diff,
)

# (k, n) grid: tiny and large n, both ends, the middle and near-ends
GRID = sorted(
    {(k, n) for n in (1, 2, 3, 7, 20, 50, 137, 1000, 25000) for k in (0, 1, n // 7, n // 2, n - 1, n) if 0 <= k <= n}
)
LEVELS = (0.8, 0.95, 0.99)


# --------------------------------------------------------------------------- against scipy
@pytest.mark.parametrize("confidence", LEVELS)
@pytest.mark.parametrize("method, scipy_method", [("wilson", "wilson"), ("clopper-pearson", "exact")])
def test_interval_matches_scipy_binomtest(method, scipy_method, confidence):
    for k, n in GRID:
        want = binomtest(k, n).proportion_ci(confidence_level=confidence, method=scipy_method)
        lo, hi = proportion_interval(k, n, confidence, method)
        assert lo == pytest.approx(want.low, abs=1e-9), (k, n)
        assert hi == pytest.approx(want.high, abs=1e-9), (k, n)


@pytest.mark.parametrize("confidence", LEVELS)
def test_jeffreys_is_the_beta_posterior_interval(confidence):
    a = 1.0 - confidence
    for k, n in GRID:
        lo, hi = proportion_interval(k, n, confidence, "jeffreys")
        # equal-tailed quantiles of Beta(k + 1/2, n - k + 1/2); the ends are pinned at 0 and 1
        want_lo = 0.0 if k == 0 else beta.ppf(a / 2, k + 0.5, n - k + 0.5)
        want_hi = 1.0 if k == n else beta.ppf(1 - a / 2, k + 0.5, n - k + 0.5)
        assert lo == pytest.approx(want_lo, abs=1e-9), (k, n)
        assert hi == pytest.approx(want_hi, abs=1e-9), (k, n)


@pytest.mark.parametrize("method", CI_METHODS)
def test_interval_basic_properties(method):
    for k, n in GRID:
        lo, hi = proportion_interval(k, n, 0.95, method)
        assert 0.0 <= lo <= k / n <= hi <= 1.0, (k, n)
        assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n), (k, n)
        lo99, hi99 = proportion_interval(k, n, 0.99, method)
        assert lo99 <= lo and hi <= hi99  # a higher level never gives a narrower interval


def test_interval_bad_arguments():
    assert proportion_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        proportion_interval(5, 4)
    with pytest.raises(ValueError):
        proportion_interval(-1, 4)
    with pytest.raises(ValueError, match="bogus"):
        proportion_interval(1, 4, 0.95, "bogus")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- coverage
# R synthetic experiments per case: the coverage estimate has standard error
# sqrt(c (1 - c) / R) = sqrt(0.95 * 0.05 / 20000) = 0.0015 around the true coverage c,
# so "c_hat >= nominal - 4 SE" fails by chance with probability ~3e-5 when c >= nominal.
# Clopper-Pearson is exact (true coverage >= nominal for every p and n): it gets 3 SE
# and no slack. Wilson and Jeffreys are approximate: their coverage oscillates around
# the nominal level as p and n vary (Brown, Cai & DasGupta 2001, Stat. Sci. 16:101),
# by up to ~2 points once n p (1 - p) is moderate, and dips further near the boundary,
# where n p is a few units (Wilson: ~0.91 at n = 50, p = 0.01, because k = 2 already
# excludes p; Jeffreys: ~0.885 at n = 50, p = 0.05, because its k = 0 upper end
# 0.049 excludes p). The slack below is that documented oscillation, not a fit.
R = 20_000
NOMINAL = 0.95
SE = math.sqrt(NOMINAL * (1 - NOMINAL) / R)
CASES = [(0.01, 50), (0.2, 50), (0.5, 50), (0.01, 400), (0.2, 400), (0.5, 400)]


def _slack(method: str, p: float, n: int) -> float:
    if method == "clopper-pearson":
        return 0.0
    return 0.05 if n * p < 5 else 0.02  # boundary dip vs. the ordinary oscillation


def _coverage(method: str, p: float, n: int, seed: int) -> tuple[float, float]:
    ks = np.random.default_rng(seed).binomial(n, p, size=R)
    vals, counts = np.unique(ks, return_counts=True)
    covered = 0
    width = 0.0
    for k, c in zip(vals.tolist(), counts.tolist()):
        lo, hi = proportion_interval(k, n, NOMINAL, method)
        covered += c * (lo <= p <= hi)
        width += c * (hi - lo)
    return covered / R, width / R


@pytest.mark.parametrize("p, n", CASES)
@pytest.mark.parametrize("method", CI_METHODS)
def test_interval_coverage(method, p, n):
    cov, width = _coverage(method, p, n, seed=1000 * n + int(p * 100))
    k_se = 3 if method == "clopper-pearson" else 4
    floor = NOMINAL - k_se * SE - _slack(method, p, n)
    assert cov >= floor, f"{method} n={n} p={p}: coverage {cov:.4f} < {floor:.4f}"
    # not trivially wide: away from the boundary the mean width stays within 25% of
    # the normal-theory width 2 z sqrt(p (1 - p) / n) (CP, the widest, is ~6% over at n = 50)
    if n * p * (1 - p) >= 9:
        wald = 2 * norm.ppf(0.975) * math.sqrt(p * (1 - p) / n)
        assert width <= 1.25 * wald, f"{method} n={n} p={p}: mean width {width:.4f} vs {wald:.4f}"
        assert cov <= 0.99, f"{method} n={n} p={p}: coverage {cov:.4f} far above nominal"


# --------------------------------------------------------------------------- ProportionAcc
def test_proportion_acc():
    rng = np.random.default_rng(1)
    x = rng.random(10_000) < 0.1
    acc = ProportionAcc()
    for part in np.array_split(x, 7):
        acc.add(part)
    k = int(x.sum())
    assert acc.count == k and acc.n == 10_000
    e = acc.estimate(0.9, "clopper-pearson")
    assert e["p"] == k / 10_000
    assert (e["ci_low"], e["ci_high"]) == proportion_interval(k, 10_000, 0.9, "clopper-pearson")


# --------------------------------------------------------------------------- NumericAcc
def _chunked(x: np.ndarray, integer: bool, seed: int) -> NumericAcc:
    """Feed ``x`` in random chunk sizes (including empty and single-value chunks)."""
    rng = np.random.default_rng(seed)
    acc = NumericAcc(integer=integer)
    i = 0
    while i < x.shape[0]:
        m = int(rng.choice([0, 1, 2, 17, 700, 4095, 4096, 5000, 9000]))
        acc.add(x[i : i + m])
        i += m
    return acc


SAMPLES = {
    "lognormal": (lambda r: r.lognormal(8.0, 1.5, 30_000), False),
    "with-zeros": (lambda r: np.where(r.random(30_000) < 0.3, 0.0, r.exponential(1e4, 30_000)), False),
    "shifted": (lambda r: 1e6 + r.normal(0, 1, 30_000), False),  # large mean, small sd
    "poisson": (lambda r: r.poisson(4.0, 30_000).astype(np.float64), True),
    "geometric": (lambda r: r.geometric(0.01, 30_000).astype(np.float64), True),
    "tiny": (lambda r: r.poisson(2.0, 3).astype(np.float64), True),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_numeric_moments_match_numpy(name):
    make, integer = SAMPLES[name]
    x = make(np.random.default_rng(len(name)))
    acc = _chunked(x, integer, seed=5)
    e = acc.estimate(0.95)
    assert e["n"] == x.shape[0]
    assert e["mean"] == pytest.approx(np.mean(x), rel=1e-9)
    assert e["sd"] == pytest.approx(np.std(x, ddof=1), rel=1e-9)
    half = norm.ppf(0.975) * np.std(x, ddof=1) / math.sqrt(x.shape[0])
    assert e["ci_high"] - e["mean"] == pytest.approx(half, rel=1e-6)
    assert e["mean"] - e["ci_low"] == pytest.approx(half, rel=1e-6)
    assert e["min"] == x.min() and e["max"] == x.max()
    assert set(e["quantiles"]) == {str(q) for q in QUANTILES}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_numeric_estimate_does_not_depend_on_chunking(name):
    """MODEL.md section 10: the same values give the same bits however they are chunked."""
    make, integer = SAMPLES[name]
    x = make(np.random.default_rng(len(name)))
    whole = NumericAcc(integer=integer)
    whole.add(x)
    want = whole.estimate(0.95)
    for seed in (1, 2, 3):
        assert _chunked(x, integer, seed).estimate(0.95) == want


QS = (0.0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


@pytest.mark.parametrize("name", [k for k, v in SAMPLES.items() if v[1]])
def test_integer_quantiles_are_exact_lower_order_statistics(name):
    make, _ = SAMPLES[name]
    x = make(np.random.default_rng(len(name)))
    acc = _chunked(x, True, seed=9)
    xs = np.sort(x)
    n = x.shape[0]
    for q in QS:
        # the definition in stats.py: order statistic number floor(q (n - 1)) + 1, 1-based
        want = xs[math.floor(q * (n - 1))]
        assert acc.quantile(q) == want, q
        assert acc.quantile(q) == np.quantile(x, q, method="lower"), q


@pytest.mark.parametrize("name", [k for k, v in SAMPLES.items() if not v[1]])
def test_float_quantiles_within_one_bin(name):
    make, _ = SAMPLES[name]
    x = make(np.random.default_rng(len(name)))
    acc = _chunked(x, False, seed=9)
    xs = np.sort(x)
    n = x.shape[0]
    width = 10 ** (1 / BINS_PER_DECADE) - 1  # relative bin width, ~0.58%
    for q in QS:
        exact = xs[math.floor(q * (n - 1))]
        got = acc.quantile(q)
        if exact == 0.0:
            assert got == 0.0, q  # zeros are counted apart, exactly
        else:
            assert abs(got / exact - 1) <= width, (q, got, exact)


def test_numeric_acc_empty_and_single():
    acc = NumericAcc(integer=False)
    assert math.isnan(acc.quantile(0.5))
    acc.add(np.array([]))
    assert acc.n == 0
    acc.add(np.array([42.0]))
    e = acc.estimate()
    assert e["mean"] == 42.0 and e["sd"] == 0.0 and e["n"] == 1
    assert all(v == 42.0 for v in e["quantiles"].values())  # clamped to [min, max]


# --------------------------------------------------------------------------- Newcombe's intervals: published examples
# Published 95% limits, printed to 4 decimals: a correct implementation is within half a
# unit of the last digit (5e-5), plus float noise.
PUBLISHED = 5e-5 + 1e-12

# Newcombe (1998), Stat Med 17:873, Table II, method 10 (score interval without continuity
# correction), examples (a)-(h): (k1, n1, k2, n2) -> (lower, upper).
UNPAIRED_EXAMPLES = {
    (56, 70, 48, 80): (0.0524, 0.3339),
    (9, 10, 3, 10): (0.1705, 0.8090),
    (6, 7, 2, 7): (0.0582, 0.8062),
    (5, 56, 0, 29): (-0.0381, 0.1926),
    (0, 10, 0, 20): (-0.1611, 0.2775),
    (0, 10, 0, 10): (-0.2775, 0.2775),
    (10, 10, 0, 20): (0.6791, 1.0000),
    (10, 10, 0, 10): (0.6075, 1.0000),
}

# Newcombe (1998), Stat Med 17:2635, Table II, method 10: (e, f, g, h) = (n11, n10, n01, n00)
# -> (lower, upper). The second and third examples fix the correlation term: they need
# phi's n/2 reduction of a positive ``eh - fg`` (without it: 0.0618-0.3239 and +-0.0640).
PAIRED_EXAMPLES = {
    (36, 12, 2, 0): (0.0569, 0.3404),
    (18, 12, 2, 18): (0.0562, 0.3290),
    (53, 0, 0, 1): (-0.0729, 0.0729),
    (0, 30, 0, 0): (0.8395, 1.0000),
}


@pytest.mark.parametrize("case", list(UNPAIRED_EXAMPLES))
def test_unpaired_newcombe_reproduces_the_published_examples(case):
    k1, n1, k2, n2 = case
    d, lo, hi = unpaired_diff_interval(k1, n1, k2, n2, 0.95)
    assert d == k1 / n1 - k2 / n2
    assert abs(lo - UNPAIRED_EXAMPLES[case][0]) <= PUBLISHED and abs(hi - UNPAIRED_EXAMPLES[case][1]) <= PUBLISHED


@pytest.mark.parametrize("case", list(PAIRED_EXAMPLES))
def test_paired_newcombe_reproduces_the_published_examples(case):
    d, lo, hi = paired_diff_interval(*case, confidence=0.95)
    assert d == (case[1] - case[2]) / sum(case)
    assert abs(lo - PAIRED_EXAMPLES[case][0]) <= PUBLISHED and abs(hi - PAIRED_EXAMPLES[case][1]) <= PUBLISHED


def _tables(seed: int, count: int) -> list[tuple[int, int, int, int]]:
    """Hand-picked 2x2 tables (zero cells, zero margins, tiny n) and random ones of every size."""
    rng = np.random.default_rng(seed)
    picked = [
        (12, 9, 2, 21),
        (0, 0, 0, 1),
        (1, 0, 0, 0),
        (0, 1, 0, 0),
        (3, 0, 0, 3),
        (0, 5, 5, 0),
        (212, 144, 256, 707),
    ]
    for _ in range(count):
        n = int(rng.choice([2, 5, 20, 100, 1000, 100_000]))
        picked.append(tuple(int(v) for v in rng.multinomial(n, rng.dirichlet([0.5] * 4))))
    return picked


@pytest.mark.parametrize("confidence", LEVELS)
def test_newcombe_intervals_match_a_brute_force_implementation(confidence):
    """The closed forms in stats.py against the papers' formulas over root-found Wilson limits."""
    for t in _tables(seed=int(confidence * 100), count=60):
        want = H.newcombe_paired(*t, confidence)
        got = paired_diff_interval(*t, confidence=confidence)
        assert got == pytest.approx(want, abs=1e-9), t  # brentq solves the Wilson limits to ~1e-15
        k1, n1, k2, n2 = t[0], t[0] + t[1] + 1, t[2], t[2] + t[3] + 1  # any two independent samples
        want = H.newcombe_unpaired(k1, n1, k2, n2, confidence)
        assert unpaired_diff_interval(k1, n1, k2, n2, confidence) == pytest.approx(want, abs=1e-9), t


def test_difference_intervals_basic_properties():
    for t in _tables(seed=7, count=100):
        d, lo, hi = paired_diff_interval(*t)
        assert -1.0 <= lo <= d <= hi <= 1.0, t
        # swapping the policies mirrors the interval
        assert paired_diff_interval(t[0], t[2], t[1], t[3]) == pytest.approx((-d, -hi, -lo), abs=1e-15), t
        lo99, hi99 = paired_diff_interval(*t, confidence=0.99)[1:]
        assert lo99 <= lo + 1e-15 and hi - 1e-15 <= hi99, t
    assert paired_diff_interval(0, 0, 0, 0)[1:] == (-1.0, 1.0) and math.isnan(paired_diff_interval(0, 0, 0, 0)[0])
    assert unpaired_diff_interval(0, 0, 3, 4)[1:] == (-1.0, 1.0) and math.isnan(unpaired_diff_interval(1, 2, 0, 0)[0])
    with pytest.raises(ValueError):
        paired_diff_interval(1, -1, 0, 0)
    with pytest.raises(ValueError):
        unpaired_diff_interval(5, 4, 1, 4)
    d, lo, hi = unpaired_diff_interval(3, 4, 1, 4)
    assert unpaired_diff_interval(1, 4, 3, 4) == pytest.approx((-d, -hi, -lo), abs=1e-15)


def test_mcnemar_exact_is_the_binomial_tail_sum():
    for b in range(0, 25):
        for c in range(0, 25):
            assert mcnemar_exact(b, c) == pytest.approx(H.mcnemar_by_sum(b, c), rel=1e-9, abs=1e-300), (b, c)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1000, 1100) == pytest.approx(H.mcnemar_by_sum(1000, 1100), rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# --------------------------------------------------------------------------- paired vs unpaired
N_PAIRS = 5000


def test_paired_interval_is_narrower_with_common_random_numbers():
    """Both policies draw from the same uniform (common random numbers): the paired interval
    uses the correlation and is much narrower than treating the runs as independent."""
    rng = np.random.default_rng(11)
    u = rng.random(N_PAIRS)
    a, b = u < 0.30, u < 0.25
    acc = PairAcc()
    acc.add(a, b)
    e = acc.estimate()
    _, ulo, uhi = unpaired_diff_interval(int(a.sum()), N_PAIRS, int(b.sum()), N_PAIRS)
    ratio = (e["ci_high"] - e["ci_low"]) / (uhi - ulo)
    # only the 5% discordant episodes vary the difference: the width ratio should be about
    # sqrt(0.05 * 0.95 / (0.3 * 0.7 + 0.25 * 0.75)) = 0.35; its sampling error at n = 5000 is
    # a few percent, so 0.5 leaves a wide margin
    assert ratio < 0.5, ratio
    assert e["n01"] == 0 and e["mcnemar_p"] < 1e-50  # b implies a: every discordant pair goes one way

    # independent pairs: the only difference is the sample correlation phi ~ N(0, 1/n), which
    # changes the squared half-widths by a fraction at most |phi|: |ratio - 1| < 4 / sqrt(n)
    a, b = rng.random(N_PAIRS) < 0.30, rng.random(N_PAIRS) < 0.25
    acc = PairAcc()
    acc.add(a, b)
    e = acc.estimate()
    _, ulo, uhi = unpaired_diff_interval(int(a.sum()), N_PAIRS, int(b.sum()), N_PAIRS)
    ratio = (e["ci_high"] - e["ci_low"]) / (uhi - ulo)
    assert abs(ratio - 1) < 4 / math.sqrt(N_PAIRS), ratio


def test_paired_mean_difference_is_narrower_with_common_random_numbers():
    rng = np.random.default_rng(12)
    base = rng.exponential(100.0, N_PAIRS)  # shared by both policies
    a = base * 1.10 + rng.normal(0, 5, N_PAIRS)
    b = base + rng.normal(0, 5, N_PAIRS)
    da = DiffAcc()
    da.add(a, b)
    pa, pb = NumericAcc(integer=False), NumericAcc(integer=False)
    pa.add(a)
    pb.add(b)
    paired, unpaired = da.estimate(), unpaired_mean_diff(pa, pb)
    assert paired["diff"] == pytest.approx(unpaired["diff"], rel=1e-9)  # mean(a - b) = mean(a) - mean(b)
    # sd(a - b) = sqrt(10^2 + 2 * 5^2) = 12.2 against sqrt(sd(a)^2 + sd(b)^2) = 149: ratio 0.08
    assert halfwidth(paired) < 0.2 * halfwidth(unpaired)
    assert paired["ci_low"] < 10.0 < paired["ci_high"]  # the true difference, 0.1 * 100
    # independent: the paired sd estimates sqrt(var a + var b) too, within its sampling error
    # (relative sd of a sample sd is about sqrt(kurtosis / (4 n)), 3 / sqrt(n) is ample for these tails)
    c = rng.exponential(100.0, N_PAIRS) * 1.1
    da = DiffAcc()
    da.add(c, b)
    pc = NumericAcc(integer=False)
    pc.add(c)
    ratio = da.estimate()["sd"] / unpaired_mean_diff(pc, pb)["sd"]
    assert abs(ratio - 1) < 3 / math.sqrt(N_PAIRS), ratio


# --------------------------------------------------------------------------- exact and simulated coverage
# Each simulated coverage is checked against the exact one, summed over the binomial pmf.
# M experiments give a standard error sqrt(c (1 - c) / M); with about 150 such checks in
# this file, 4.5 SE (two-sided false alarm 6.8e-6 each) keeps the chance of any false
# failure near 0.1%; 1 / M more allows for the discreteness of a count when c is near 1.
M = 20_000
Z = 4.5
COVER_N = (5, 10, 30, 100, 400)
COVER_P = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
FINE_P = (np.arange(2000) + 0.5) / 2000  # a uniform grid over (0, 1) for averages and minima


def _tol(c: float, m: int) -> float:
    return Z * math.sqrt(c * (1 - c) / m) + 1 / m


@pytest.mark.parametrize("method", CI_METHODS)
def test_exact_and_simulated_coverage(method):
    rng = np.random.default_rng(sum(map(ord, method)))
    report = []
    for n in COVER_N:
        lo, hi = H.interval_table(lambda k, n: proportion_interval(k, n, NOMINAL, method), n)
        # (a) simulated coverage agrees with the exact coverage at each (n, p)
        exact = H.exact_coverage(lo, hi, n, np.array(COVER_P))
        for p, c in zip(COVER_P, exact):
            k = rng.binomial(n, p, size=M)
            sim = float(np.mean((lo[k] <= p) & (p <= hi[k])))
            assert abs(sim - c) <= _tol(c, M), f"{method} n={n} p={p}: simulated {sim:.4f}, exact {c:.4f}"
        # (b) against the nominal level, exactly, over a fine p grid
        fine = H.exact_coverage(lo, hi, n, FINE_P)
        report.append(f"n={n}: mean {fine.mean():.4f} min {fine.min():.4f}")
        if method == "clopper-pearson":
            assert fine.min() >= NOMINAL - 1e-9, f"n={n}: min coverage {fine.min():.5f}"  # exact by construction
        else:
            # Brown, Cai & DasGupta (2001): pointwise the coverage oscillates (minima of 0.84
            # to 0.90 here, near p = 0 or 1), but its average over p stays close to nominal.
            # Observed averages: Wilson 0.9553 (n = 5) falling to 0.9504 (n = 400), Jeffreys
            # 0.9576 to 0.9498; 0.01 is the allowance, and the average may not fall below 0.945.
            assert abs(fine.mean() - NOMINAL) <= 0.01 and fine.mean() >= NOMINAL - 0.005, report[-1]
    print(method, "; ".join(report))


@pytest.mark.parametrize("n", COVER_N)
def test_jeffreys_average_coverage_under_its_prior_is_nominal(n):
    """A posterior interval covers with exactly its credibility on average over its prior.

    Averaged over p ~ Beta(1/2, 1/2) the Jeffreys interval covers with probability
    ``confidence + alpha/2 (m(0) + m(n))``: the equal-tailed posterior mass, plus the tails
    that pinning the k = 0 lower end at 0 and the k = n upper end at 1 add, with ``m(k)``
    the beta-binomial marginal probability of k. Computed exactly: the coverage of each
    k, weighted by m(k), is the posterior mass of its interval.
    """
    alpha = 1 - NOMINAL
    k = np.arange(n + 1)
    lo, hi = H.interval_table(lambda k, n: proportion_interval(k, n, NOMINAL, "jeffreys"), n)
    # m(k) = C(n, k) B(k + 1/2, n - k + 1/2) / B(1/2, 1/2)
    m = np.exp(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + betaln(k + 0.5, n - k + 0.5) - betaln(0.5, 0.5))
    mass = beta.cdf(hi, k + 0.5, n - k + 0.5) - beta.cdf(lo, k + 0.5, n - k + 0.5)
    want = NOMINAL + alpha / 2 * (m[0] + m[n])
    assert m.sum() == pytest.approx(1.0, abs=1e-12)
    assert float(np.sum(m * mass)) == pytest.approx(want, abs=1e-9)


PAIRED_CELLS = [  # (pi11, pi10, pi01, pi00): no effect, modest and strong effects, rare events, a zero cell
    (0.25, 0.25, 0.25, 0.25),
    (0.40, 0.10, 0.05, 0.45),
    (0.30, 0.05, 0.05, 0.60),
    (0.10, 0.30, 0.10, 0.50),
    (0.05, 0.02, 0.01, 0.92),
    (0.45, 0.05, 0.00, 0.50),
]


@pytest.mark.parametrize("n", (20, 50))
def test_paired_difference_coverage(n):
    tables = H.all_tables(n)  # every possible outcome: the exact coverage is a finite sum
    ends = np.array([paired_diff_interval(*map(int, t), confidence=NOMINAL)[1:] for t in tables])
    index = {tuple(t): i for i, t in enumerate(tables.tolist())}
    rng = np.random.default_rng(n)
    exact_all = []
    for cells in PAIRED_CELLS:
        d = cells[1] - cells[2]
        inside = (ends[:, 0] <= d) & (d <= ends[:, 1])
        exact = float(H.multinomial_pmf(tables, cells)[inside].sum())
        draws = rng.multinomial(n, cells, size=M)
        sim = float(np.mean(inside[[index[tuple(t)] for t in draws.tolist()]]))
        assert abs(sim - exact) <= _tol(exact, M), f"{cells}: simulated {sim:.4f}, exact {exact:.4f}"
        # The hybrid interval inherits the Wilson limits' pointwise oscillation: allow the
        # same 0.05 boundary dip as the single-proportion tests (lowest here: 0.920, with an
        # empty cell at n = 50), and require the average over the cells to reach nominal
        # within 0.01 (observed 0.98 at n = 20, 0.965 at n = 50: the interval is conservative).
        assert exact >= NOMINAL - 0.05, f"{cells}: exact coverage {exact:.4f}"
        exact_all.append(exact)
    assert np.mean(exact_all) >= NOMINAL - 0.01, exact_all
    print(f"n={n}: paired coverage", " ".join(f"{c:.4f}" for c in exact_all))


@pytest.mark.parametrize("confidence", LEVELS)
def test_order_ranks_are_the_tightest_with_exact_coverage(confidence):
    """l and u as documented: P(B < l) <= alpha/2 < P(B <= l), P(B >= u) <= alpha/2 < P(B >= u - 1)."""
    a = (1 - confidence) / 2
    for n in (1, 2, 5, 19, 20, 50, 137, 1000, 10**6):
        for q in (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0):
            l, u = stats._order_ranks(n, q, confidence)
            assert 0 <= l <= u <= n + 1, (n, q)
            assert binom.cdf(l - 1, n, q) <= a + 1e-12 < binom.cdf(l, n, q) + 2e-12, (n, q, l)
            assert binom.sf(u - 1, n, q) <= a + 1e-12 < binom.sf(u - 2, n, q) + 2e-12, (n, q, u)
            if 1 <= l and u <= n:  # both ends finite: the exact coverage for continuous data
                assert binom.cdf(u - 1, n, q) - binom.cdf(l - 1, n, q) >= confidence - 1e-12, (n, q)


M_ORDER = 8000  # experiments through an accumulator each (about 0.1 ms apiece)


@pytest.mark.parametrize("n, q", [(50, 0.5), (400, 0.9), (1000, 0.99)])
def test_order_quantile_interval_coverage(n, q):
    """Continuous data through a real-valued accumulator, the true quantile at a bin mid-point.

    With the quantile exactly at a bin mid-point, a binned end is on the right side of it
    whenever the exact order statistic is, so the binned coverage is at least the exact
    ``P(l <= B < u)``, itself at least nominal.
    """
    xi = 10 ** (LOG_LO + (3 * BINS_PER_DECADE + 0.5) / BINS_PER_DECADE)  # the bin mid-point nearest 1
    scale = xi / -math.log1p(-q)  # exponential with its q quantile at xi
    l, u = stats._order_ranks(n, q, NOMINAL)
    exact = float(binom.cdf(u - 1, n, q) - binom.cdf(l - 1, n, q))
    rng = np.random.default_rng(n)
    hits = 0
    for _ in range(M_ORDER // 1000):
        for row in rng.exponential(scale, size=(1000, n)):
            acc = NumericAcc(integer=False)
            acc.add(row)
            lo, hi = quantile_interval(acc, q, NOMINAL)
            hits += lo <= xi <= hi
    cov = hits / M_ORDER
    print(f"order interval n={n} q={q}: simulated {cov:.4f}, exact order-statistic coverage {exact:.4f}")
    assert exact >= NOMINAL
    assert cov >= exact - _tol(exact, M_ORDER), (cov, exact)


def test_order_quantile_interval_is_conservative_on_discrete_data():
    """Ties only help: with B' = #{X <= median} ~ Bin(n, F(median)), F(median) >= 1/2."""
    n, lam, median = 100, 3.5, 3.0  # Poisson(3.5): P(X <= 2) = 0.32, P(X <= 3) = 0.54
    rng = np.random.default_rng(5)
    hits = 0
    for row in rng.poisson(lam, size=(2000, n)).astype(np.float64):
        acc = NumericAcc(integer=True)
        acc.add(row)
        lo, hi = quantile_interval(acc, 0.5, NOMINAL)
        hits += lo <= median <= hi
    assert hits / 2000 >= NOMINAL - _tol(NOMINAL, 2000)


# --------------------------------------------------------------------------- quantile intervals
@pytest.mark.parametrize("name", [k for k, v in SAMPLES.items() if v[1] and k != "tiny"])
def test_order_interval_on_integer_data_is_the_exact_order_statistics(name):
    make, _ = SAMPLES[name]
    x = make(np.random.default_rng(len(name)))
    acc = _chunked(x, True, seed=4)
    xs = np.sort(x)
    n = x.shape[0]
    for q in (0.01, 0.5, 0.9, 0.99):
        for conf in LEVELS:
            l, u = stats._order_ranks(n, q, conf)
            assert quantile_interval(acc, q, conf) == (xs[l - 1], xs[u - 1]), (q, conf)
        lo, hi = quantile_interval(acc, q)
        assert lo <= acc.quantile(q) <= hi


@pytest.mark.parametrize("name", [k for k, v in SAMPLES.items() if not v[1]])
def test_order_interval_on_real_data_within_one_bin(name):
    make, _ = SAMPLES[name]
    x = make(np.random.default_rng(len(name)))
    acc = _chunked(x, False, seed=4)
    xs = np.sort(x)
    n = x.shape[0]
    width = 10 ** (1 / BINS_PER_DECADE) - 1
    for q in (0.01, 0.5, 0.9, 0.99):
        l, u = stats._order_ranks(n, q, 0.95)
        for got, exact in zip(quantile_interval(acc, q), (xs[l - 1], xs[u - 1])):
            if exact == 0.0:
                assert got == 0.0
            else:
                assert abs(got / exact - 1) <= width, (q, got, exact)


def test_quantile_interval_edge_cases():
    acc = NumericAcc(integer=False)
    assert all(math.isnan(v) for v in quantile_interval(acc, 0.5))
    acc.add(np.linspace(1.0, 2.0, 20))
    # 20 values cannot bound the 0.99 quantile from above: P(all 20 below it) = 0.99^20 = 0.82
    lo, hi = quantile_interval(acc, 0.99)
    assert hi == math.inf and 1.0 <= lo <= 2.0
    assert quantile_interval(acc, 0.0)[0] == -math.inf
    e = acc.estimate(0.95)
    assert e["quantile_ci"] == {str(q): list(quantile_interval(acc, q, 0.95)) for q in QUANTILES}
    for bad in ({"q": 1.5}, {"q": 0.5, "confidence": 1.0}, {"q": 0.5, "method": "bogus"}):
        with pytest.raises(ValueError):
            quantile_interval(acc, **bad)  # type: ignore[arg-type]


def _level_bounds(acc: NumericAcc, q: float, end: float) -> tuple[float, float]:
    vals, cnts = acc._support()
    return H.bootstrap_cdf(vals, cnts, math.floor(q * (acc.n - 1)) + 1, end)


BOOT_B = 2000


@pytest.mark.parametrize("integer", [False, True])
def test_bootstrap_routes_agree_with_the_exact_bootstrap_distribution(integer, monkeypatch):
    """scipy's bootstrap on the expanded data and the multinomial resampling of the counts.

    Both estimate the same bootstrap distribution of the order statistic, which is known in
    closed form (``stat_harness.bootstrap_cdf``). Each route's percentile end at level a
    must sit at that level of the exact distribution within the Monte Carlo error of B
    resamples: Z sqrt(a (1 - a) / B), plus 2 / B for the rank rounding and interpolation of
    the percentile (the k-th smallest of B draws lands above level a - t only if at least
    k draws fall in a set of probability a - t: a binomial tail).
    """
    rng = np.random.default_rng(21)
    x = rng.poisson(30.0, 3000).astype(np.float64) if integer else rng.lognormal(5.0, 1.0, 3000)
    acc = NumericAcc(integer=integer)
    acc.add(x)
    q, conf = 0.9, 0.9
    a = (1 - conf) / 2
    tol = Z * math.sqrt(a * (1 - a) / BOOT_B) + 2 / BOOT_B
    via_scipy = quantile_interval(acc, q, conf, "bootstrap", n_resamples=BOOT_B, seed=3)
    assert via_scipy == quantile_interval(acc, q, conf, "bootstrap", n_resamples=BOOT_B, seed=3)  # seeded
    monkeypatch.setattr(stats, "BOOTSTRAP_EXPAND_MAX", 0)
    via_counts = quantile_interval(acc, q, conf, "bootstrap", n_resamples=BOOT_B, seed=3)
    assert via_counts == quantile_interval(acc, q, conf, "bootstrap", n_resamples=BOOT_B, seed=3)
    levels = {}
    for route, ends in (("scipy", via_scipy), ("counts", via_counts)):
        for level, end in zip((a, 1 - a), ends):
            below, at_or_below = _level_bounds(acc, q, end)
            assert below - tol <= level <= at_or_below + tol, (route, level, end, below, at_or_below)
            levels[route, level] = (below, at_or_below)
    for level in (a, 1 - a):  # so the two routes agree: their levels overlap within twice that error
        (b1, a1), (b2, a2) = levels["scipy", level], levels["counts", level]
        assert b1 - 2 * tol <= a2 and b2 - 2 * tol <= a1, (level, levels)
    # and both bracket the estimate, near the order-statistic interval
    order = quantile_interval(acc, q, conf)
    for lo, hi in (via_scipy, via_counts):
        assert lo <= acc.quantile(q) <= hi
        assert abs(lo - order[0]) <= 0.5 * (order[1] - order[0]) and abs(hi - order[1]) <= 0.5 * (order[1] - order[0])


def test_bootstrap_above_the_expansion_limit_needs_no_expansion():
    """More values than BOOTSTRAP_EXPAND_MAX: the count resampling, in bounded memory."""
    rng = np.random.default_rng(8)
    acc = NumericAcc(integer=True)
    for _ in range(3):
        acc.add(rng.poisson(6.0, 100_000).astype(np.float64))
    assert acc.n > stats.BOOTSTRAP_EXPAND_MAX
    lo, hi = quantile_interval(acc, 0.5, method="bootstrap", n_resamples=500, seed=1)
    assert lo <= acc.quantile(0.5) <= hi and hi - lo <= 1.0  # the median of 300000 values is pinned


# --------------------------------------------------------------------------- PairAcc and DiffAcc
def _chunked_pairs(acc, a: np.ndarray, b: np.ndarray, seed: int):
    """Feed aligned ``a``, ``b`` in random chunk sizes (including empty and single-value chunks)."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < a.shape[0]:
        m = int(rng.choice([0, 1, 2, 17, 700, MOMENT_BLOCK - 1, MOMENT_BLOCK, 5000, 9000]))
        acc.add(a[i : i + m], b[i : i + m])
        i += m
    return acc


def test_pair_acc_counts_and_estimate():
    rng = np.random.default_rng(31)
    u = rng.random(30_000)
    a, b = (u < 0.2).astype(np.int8), u < 0.15 + 0.1 * (rng.random(30_000) < 0.3)
    acc = _chunked_pairs(PairAcc(), a, b, seed=1)
    ab = a.astype(bool)
    counts = [int(np.sum(ab & b)), int(np.sum(ab & ~b)), int(np.sum(~ab & b)), int(np.sum(~ab & ~b))]
    assert [acc.n11, acc.n10, acc.n01, acc.n00] == counts and acc.n == 30_000
    e = acc.estimate(0.9)
    assert set(e) == {"diff", "ci_low", "ci_high", "n", "n11", "n10", "n01", "n00", "mcnemar_p", "p_a", "p_b"}
    assert (e["diff"], e["ci_low"], e["ci_high"]) == paired_diff_interval(*counts, confidence=0.9)
    assert e["p_a"] == np.mean(ab) and e["p_b"] == np.mean(b)
    assert e["mcnemar_p"] == mcnemar_exact(counts[1], counts[2])
    for seed in (2, 3):
        assert _chunked_pairs(PairAcc(), a, b, seed).estimate(0.9) == e
    empty = PairAcc().estimate()
    assert empty["n"] == 0 and (empty["ci_low"], empty["ci_high"], empty["mcnemar_p"]) == (-1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        PairAcc().add(a[:3], b[:4])


def test_diff_acc_matches_numpy_and_does_not_depend_on_chunking():
    rng = np.random.default_rng(32)
    a = rng.lognormal(8.0, 1.5, 30_000)
    b = a * rng.uniform(0.8, 1.1, 30_000)
    whole = DiffAcc()
    whole.add(a, b)
    e = whole.estimate(0.95)
    d = a - b
    assert e["n"] == 30_000
    assert e["diff"] == pytest.approx(np.mean(d), rel=1e-9)
    assert e["sd"] == pytest.approx(np.std(d, ddof=1), rel=1e-9)
    assert e["ci_high"] - e["diff"] == pytest.approx(norm.ppf(0.975) * np.std(d, ddof=1) / math.sqrt(30_000), rel=1e-6)
    # the same block-merged moments as a NumericAcc fed the differences: the same bits
    acc = NumericAcc(integer=False)
    acc.add(d)
    assert (e["diff"], e["sd"]) == (acc.mean, acc.estimate()["sd"])
    for seed in (1, 2, 3):
        assert _chunked_pairs(DiffAcc(), a, b, seed).estimate(0.95) == e
    empty = DiffAcc().estimate()
    assert empty["n"] == 0 and math.isnan(empty["diff"]) and math.isnan(empty["ci_low"])
    with pytest.raises(ValueError):
        DiffAcc().add(a[:3], b[:4])


def test_unpaired_mean_diff_is_welch():
    rng = np.random.default_rng(33)
    x, y = rng.normal(10.0, 2.0, 4000), rng.normal(9.0, 5.0, 1000)
    ax, ay = NumericAcc(integer=False), NumericAcc(integer=False)
    ax.add(x)
    ay.add(y)
    e = unpaired_mean_diff(ax, ay, 0.9)
    se = math.sqrt(np.var(x, ddof=1) / 4000 + np.var(y, ddof=1) / 1000)
    assert e["diff"] == pytest.approx(np.mean(x) - np.mean(y), rel=1e-9)
    assert halfwidth(e) == pytest.approx(norm.ppf(0.95) * se, rel=1e-6)
    assert e["sd"] == pytest.approx(math.sqrt(np.var(x, ddof=1) + np.var(y, ddof=1)), rel=1e-9)
    assert e["n"] == 1000
    assert math.isnan(unpaired_mean_diff(ax, NumericAcc(integer=False))["diff"])


# --------------------------------------------------------------------------- precision targets
def test_halfwidth_and_meets_target():
    p = {"p": 0.2, "ci_low": 0.18, "ci_high": 0.22, "n": 1000}
    assert halfwidth(p) == pytest.approx(0.02)
    assert meets_target(p, 0.021, relative=False) and not meets_target(p, 0.019, relative=False)
    assert meets_target(p, 0.11, relative=True) and not meets_target(p, 0.09, relative=True)  # 0.02 / 0.2 = 0.1
    mean = {"mean": -50.0, "ci_low": -52.0, "ci_high": -48.0, "n": 10}
    assert meets_target(mean, 0.05, relative=True) and not meets_target(mean, 0.03, relative=True)  # |estimate|
    diff = {"diff": 0.0, "ci_low": -0.01, "ci_high": 0.01, "n": 100}
    assert not meets_target(diff, 1e6, relative=True) and meets_target(diff, 0.01, relative=False)
    exact_zero = {"p": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 5}
    assert meets_target(exact_zero, 0.1, relative=True)  # a zero half-width meets even a relative target
    assert not meets_target({"mean": 3.0, "ci_low": 3.0, "ci_high": 3.0, "n": 1}, 0.1, relative=False)
    assert not meets_target({"mean": 0.0, "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}, 1.0, False)
    acc = ProportionAcc()
    acc.add(np.arange(400) % 5 == 0)
    e = acc.estimate()
    assert meets_target(e, 0.25, relative=True) is (halfwidth(e) <= 0.25 * 0.2)
    unbounded = NumericAcc(integer=False)
    unbounded.add(np.linspace(1.0, 2.0, 20))
    lo, hi = unbounded.estimate()["quantile_ci"]["0.99"]
    assert not meets_target({"mean": 1.0, "ci_low": lo, "ci_high": hi, "n": 20}, 1e9, relative=False)
