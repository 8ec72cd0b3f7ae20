"""Counter-based random numbers for the kernels.

Every random number is a pure function of ``(seed, episode, stream, draw)``
(MODEL.md section 10). A *stream key* is derived once per stream and episode
by mixing ``seed``, ``episode`` and ``stream`` through the SplitMix64 output
function; draw ``i`` of a stream is ``mix64(key + (i + 1) * GOLDEN)``, i.e.
the SplitMix64 sequence started at that key. Nothing is shared between
episodes or threads, so the results do not depend on the number of CPU
threads, on chunking, or on the machine.

All functions here are small ``@njit`` functions that the engine inlines.
"""

from __future__ import annotations

import math

import numpy as np

from depletion._jit import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53

# distribution kinds (shared with depletion.config)
D_FIXED = 0
D_EXPONENTIAL = 1
D_POISSON = 2
D_GEOMETRIC = 3
D_UNIFORM = 4
D_LOGNORMAL = 5


@njit
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 output function (a bijection on 64-bit integers)."""
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit
def stream_key(seed: np.uint64, episode: np.uint64, stream: np.uint64) -> np.uint64:
    """Key of one stream of one episode."""
    k = mix64(np.uint64(seed) * GOLDEN + _ONE)
    k = mix64(k ^ (np.uint64(episode) * _M1 + GOLDEN))
    return mix64(k ^ (np.uint64(stream) * _M2 + _ONE))


@njit
def raw(key: np.uint64, draw: np.uint64) -> np.uint64:
    """Raw 64-bit draw number ``draw`` of the stream with ``key``."""
    return mix64(np.uint64(key) + (np.uint64(draw) + _ONE) * GOLDEN)


@njit
def uniform(key: np.uint64, draw: int) -> float:
    """Uniform on (0, 1]: never 0, so ``log`` is always finite."""
    r = raw(key, np.uint64(draw) * np.uint64(2))
    return (float(r >> _S11) + 1.0) * _INV53


@njit
def uniform2(key: np.uint64, draw: int) -> float:
    """Second independent uniform of the same logical draw (for pairs)."""
    r = raw(key, np.uint64(draw) * np.uint64(2) + _ONE)
    return (float(r >> _S11) + 1.0) * _INV53


@njit
def exponential(key: np.uint64, draw: int, mean: float) -> float:
    """Exponential with the given mean, by inversion of one uniform."""
    return -mean * math.log(uniform(key, draw))


@njit
def _poisson_inv(lam: float, u: float) -> int:
    """Poisson(lam) by inversion of ``u``; exact, also for large ``lam``."""
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        p = math.exp(-lam)
        c = p
        k = 0
        while u > c and k < 10000:
            k += 1
            p *= lam / k
            c += p
        return k
    # start at the mode and walk; CDF at the mode from the two tails
    m = int(lam)
    pm = math.exp(-lam + m * math.log(lam) - math.lgamma(m + 1.0))
    # cdf(m) = sum_{k<=m} p_k, summed downwards until negligible
    c = pm
    p = pm
    k = m
    while k > 0:
        p *= k / lam
        k -= 1
        c += p
        if p < 1e-18 * c:
            break
    if u <= c:
        # walk down: largest k with cdf(k-1) < u
        p = pm
        k = m
        while k > 0:
            c -= p
            if u > c:
                return k
            p *= k / lam
            k -= 1
        return 0
    p = pm
    k = m
    while True:
        k += 1
        p *= lam / k
        c += p
        if u <= c or p < 1e-300:
            return k


@njit
def _ndtri(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, refined)."""
    a0, a1, a2 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a3, a4, a5 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b0, b1, b2 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b3, b4 = 6.680131188771972e01, -1.328068155288572e01
    c0, c1, c2 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c3, c4, c5 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d0, d1, d2, d3 = 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    elif p <= 1.0 - plow:
        q = p - 0.5
        r = q * q
        x = (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q / (
            ((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0
        )
    else:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    # one Halley step against erfc for full double precision
    e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


@njit
def sample(kind: int, a: float, b: float, key: np.uint64, draw: int) -> float:
    """One draw of the distribution ``(kind, a, b)`` (see depletion.config).

    ``fixed``: a; ``exponential``: mean a; ``poisson``: mean a;
    ``geometric``: mean a, support 1, 2, ...; ``uniform``: a..b;
    ``lognormal``: median a, sigma b. Uses uniform draw ``draw`` only, so
    every logical draw has its own fixed counter.
    """
    if kind == D_EXPONENTIAL:  # the common case first
        return -a * math.log(uniform(key, draw))
    if kind == D_FIXED:
        return a
    u = uniform(key, draw)
    if kind == D_POISSON:
        return float(_poisson_inv(a, u))
    if kind == D_GEOMETRIC:
        if a <= 1.0:
            return 1.0
        q = 1.0 - 1.0 / a
        return 1.0 + math.floor(math.log(u) / math.log(q))
    if kind == D_UNIFORM:
        return a + (b - a) * (1.0 - u)
    # lognormal
    if u >= 1.0:
        u = 1.0 - 1.0e-16
    return a * math.exp(b * _ndtri(u))


@njit
def choose(cum: np.ndarray, u: float) -> int:
    """Index of the category for uniform ``u`` given cumulative probabilities."""
    n = cum.shape[0]
    for i in range(n):
        if u <= cum[i]:
            return i
    # rounding: last category with positive mass
    for i in range(n - 1, -1, -1):
        if i == 0 or cum[i] > cum[i - 1]:
            return i
    return n - 1
