"""The counter-based generator and each sampler, against SciPy, also inside njit(parallel=True)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange
from scipy import stats

from depletion import rng

N = 200_000
# Each KS / chi-square test has false-alarm probability ALPHA; with the ~10
# tests here the file fails by chance with probability below 1e-3.
ALPHA = 1e-4


@njit(parallel=True)
def _draws(seed, stream, kind, a, b, n):
    out = np.empty(n)
    key = rng.stream_key(np.uint64(seed), np.uint64(0), np.uint64(stream))
    for i in prange(n):
        out[i] = rng.sample(kind, a, b, key, i)
    return out


def test_uniform_is_uniform():
    x = _draws(1, 1, rng.D_UNIFORM, 0.0, 1.0, N)
    assert stats.kstest(x, "uniform").pvalue > ALPHA
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("mean", [1.0, 50.0, 1e5])
def test_exponential_matches_scipy(mean):
    x = _draws(2, 2, rng.D_EXPONENTIAL, mean, 0.0, N)
    assert stats.kstest(x, "expon", args=(0, mean)).pvalue > ALPHA
    # the far tail (x > 7.69 * mean, mass exp(-7.69) ~ 4.5e-4) is checked on its own: KS barely sees it
    k = int((x > 7.697117470131487 * mean).sum())
    assert stats.binomtest(k, N, np.exp(-7.697117470131487)).pvalue > ALPHA


@pytest.mark.parametrize("mean", [0.5, 4.0, 29.0, 31.0, 1000.0])
def test_poisson_matches_scipy(mean):
    x = _draws(3, 3, rng.D_POISSON, mean, 0.0, N).astype(np.int64)
    lo, hi = int(stats.poisson.ppf(1e-6, mean)), int(stats.poisson.ppf(1 - 1e-6, mean))
    edges = np.arange(lo, hi + 2) - 0.5
    obs, _ = np.histogram(np.clip(x, lo, hi), edges)
    p = stats.poisson.pmf(np.arange(lo, hi + 1), mean)
    p[0] += stats.poisson.cdf(lo - 1, mean)
    p[-1] += stats.poisson.sf(hi, mean)
    keep = p * N >= 5  # chi-square needs expected counts >= 5: pool the rest into one cell
    o = np.append(obs[keep], obs[~keep].sum())
    e = np.append(p[keep], p[~keep].sum()) * N
    if e[-1] < 5:
        o[-2] += o[-1]
        e[-2] += e[-1]
        o, e = o[:-1], e[:-1]
    assert stats.chisquare(o, e * o.sum() / e.sum()).pvalue > ALPHA


def test_geometric_starts_at_one():
    x = _draws(4, 4, rng.D_GEOMETRIC, 8.0, 0.0, N).astype(np.int64)
    assert x.min() >= 1
    # support 1, 2, ...: scipy's geom with p = 1/mean
    edges = np.arange(1, 60) - 0.5
    obs, _ = np.histogram(np.clip(x, 1, 58), edges)
    p = stats.geom.pmf(np.arange(1, 59), 1 / 8.0)
    p[-1] += stats.geom.sf(58, 1 / 8.0)
    assert stats.chisquare(obs, p * N * obs.sum() / (p * N).sum()).pvalue > ALPHA


def test_lognormal_matches_scipy():
    x = _draws(5, 5, rng.D_LOGNORMAL, 200.0, 1.0, N)
    assert stats.kstest(x, "lognorm", args=(1.0, 0, 200.0)).pvalue > ALPHA


def test_fixed_and_uniform_range():
    assert (_draws(6, 6, rng.D_FIXED, 3.5, 0.0, 100) == 3.5).all()
    x = _draws(6, 7, rng.D_UNIFORM, 0.7, 1.0, N)
    assert stats.kstest(x, "uniform", args=(0.7, 0.3)).pvalue > ALPHA


def test_draws_are_pure_functions_of_their_counter():
    a = _draws(9, 1, rng.D_EXPONENTIAL, 1.0, 0.0, 1000)
    b = _draws(9, 1, rng.D_EXPONENTIAL, 1.0, 0.0, 1000)
    np.testing.assert_array_equal(a, b)
    c = _draws(9, 2, rng.D_EXPONENTIAL, 1.0, 0.0, 1000)
    assert not np.array_equal(a, c)


def test_streams_are_uncorrelated():
    a = _draws(10, 1, rng.D_UNIFORM, 0.0, 1.0, N)
    b = _draws(10, 2, rng.D_UNIFORM, 0.0, 1.0, N)
    # |r| of independent uniforms is about N(0, 1/N): 5 standard errors
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(N)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 5 / np.sqrt(N)


def test_choose_respects_probabilities():
    cum = np.cumsum([0.6, 0.3, 0.0, 0.1])
    u = _draws(11, 1, rng.D_UNIFORM, 0.0, 1.0, N)
    idx = np.array([rng.choose(cum, v) for v in u[:20000]])
    assert 2 not in idx
    counts = np.bincount(idx, minlength=4)
    assert stats.chisquare(counts[[0, 1, 3]], np.array([0.6, 0.3, 0.1]) * 20000).pvalue > ALPHA
