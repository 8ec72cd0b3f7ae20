"""Rare events: an importance-sampling estimator of ``P(exhausted)``.

Plain Monte Carlo needs about ``100 / p`` episodes for a 10% relative error,
which is out of reach for probabilities near ``1e-9``. Importance sampling
draws the episodes from a *proposal* law ``q`` under which the event is
common (a *tilt* of some workload parameters) and weights each episode by the
likelihood ratio ``w = p(x) / q(x)`` of every tilted draw it made; the kernel
(:mod:`depletion.engine`) accumulates ``log w`` in the column ``log_weight``.
Then ``E_q[1{event} w] = P_p(event)`` exactly, whatever the tilt, as long as
``q`` gives positive probability to everything ``p`` does; a good tilt makes
the weighted indicator's variance small.

A tilt maps parameter names to proposal values, written as scenario values
(``{dist = "poisson", mean = 8}``, a list of order probabilities, a rate):

- ``f0_frac``, ``exit_allocs``, ``exit_gap_us``, ``wake_us``, ``hold_us``,
  ``reclaim_round_us``, ``reaper_delay_us``: the same family as the nominal
  one, its support containing the nominal support (uniform
  ``[low', high'] ⊇ [low, high]``; exponential, Poisson, geometric and
  lognormal: any proper proposal of the family, unless the nominal law is a
  point mass). ``fixed`` cannot be tilted.
- ``reaper_lock_p``: a probability in [0, 1], ``> 0`` where the nominal one
  is and ``< 1`` where the nominal one is (each reaper attempt is a
  Bernoulli draw).
- ``order_probs``, ``class_probs``: probabilities with ``q_k > 0`` wherever
  ``p_k > 0``.
- ``bystanders.CLASS.rate_per_ms`` (``> 0`` where the nominal rate is),
  ``bystanders.CLASS.order_probs``, ``bystanders.CLASS.hold_us``.
- ``bystanders.CLASS.victim_rate_per_ms``: a *windowed* rate tilt, the
  proposal rate while some victim thread is alive; after the last one exits
  (a stopping time) the stream runs at ``rate_per_ms`` (the tilt's if given,
  else the nominal rate). ``> 0`` where the nominal rate or the rate after
  is.

The rules of the weights (which draws, the Poisson-process ratio of the
bystander streams over the episode's end, the post-victim shortcut) are in
``docs/model-notes.md``, section "Rare events (importance sampling)".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from depletion.config import HOLD_SPEC, MAX_ORDER, SPECS, Scenario, _dist, _probs, load_scenario
from depletion.errors import DepletionError, check_whole
from depletion.semantics import CLASSES, parse_policy

#: top-level parameters a tilt may change
TILT_KEYS = (
    "f0_frac",
    "exit_allocs",
    "exit_gap_us",
    "wake_us",
    "hold_us",
    "reclaim_round_us",
    "reaper_delay_us",
    "reaper_lock_p",
    "order_probs",
    "class_probs",
)
#: keys of a ``bystanders.CLASS`` table a tilt may change (``victim_rate_per_ms``: the rate while victims are alive)
TILT_BYSTANDER_KEYS = ("rate_per_ms", "victim_rate_per_ms", "order_probs", "hold_us")

#: 0/1 outcomes :func:`estimate_rare` can estimate, from the engine's columns
OUTCOMES = ("exhausted", "stalled", "victim_failed", "bystander_failed", "reaper_gave_up", "truncated")

_ALLOWED = ", ".join([*TILT_KEYS, *(f"bystanders.CLASS.{k}" for k in TILT_BYSTANDER_KEYS)])


# ------------------------------------------------------------------ the tilt
def _flatten(tilt: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys; a nested ``{"bystanders": {CLASS: {KEY: v}}}`` is flattened too."""
    if not isinstance(tilt, Mapping):
        raise DepletionError(f"tilt: expected a table of parameter = proposal value; allowed keys: {_ALLOWED}")
    flat: dict[str, Any] = {}
    for k, v in tilt.items():
        if k == "bystanders" and isinstance(v, Mapping):
            for c, t in v.items():
                if not isinstance(t, Mapping):
                    raise DepletionError(
                        f"tilt bystanders.{c}: expected a table with keys {', '.join(TILT_BYSTANDER_KEYS)}"
                    )
                for kk, vv in t.items():
                    flat[f"bystanders.{c}.{kk}"] = vv
        else:
            flat[str(k)] = v
    return flat


def _check_dist(key: str, p: Mapping[str, Any], q: Mapping[str, Any]) -> None:
    """Same family, support of ``q`` containing that of ``p``."""
    fam = p["dist"]
    if fam == "fixed":
        raise DepletionError(
            f"tilt {key}: the nominal distribution is 'fixed', which cannot be tilted "
            f"(only exponential, poisson, geometric, uniform and lognormal can)"
        )
    if q["dist"] != fam:
        raise DepletionError(f"tilt {key}: the proposal must keep the nominal family {fam!r}, got {q['dist']!r}")
    if dict(p) == dict(q):
        return
    if fam == "exponential":
        if p["mean"] == 0:
            raise DepletionError(f"tilt {key}: the nominal law is a point mass (mean 0) and cannot be tilted")
        if q["mean"] <= 0:
            raise DepletionError(f"tilt {key}: the proposal mean must be > 0 (the nominal support is x > 0)")
    elif fam == "poisson":
        if p["mean"] > 0 and q["mean"] <= 0:
            raise DepletionError(f"tilt {key}: the proposal mean must be > 0 (the nominal support is 0, 1, 2, ...)")
    elif fam == "geometric":
        if p["mean"] > 1 and q["mean"] <= 1:
            raise DepletionError(f"tilt {key}: the proposal mean must be > 1 (the nominal support is 1, 2, 3, ...)")
    elif fam == "uniform":
        if p["low"] == p["high"]:
            raise DepletionError(f"tilt {key}: the nominal law is a point mass (low = high) and cannot be tilted")
        if q["low"] > p["low"] or q["high"] < p["high"]:
            raise DepletionError(
                f"tilt {key}: the proposal [{q['low']:g}, {q['high']:g}] must contain the nominal "
                f"support [{p['low']:g}, {p['high']:g}]"
            )
    elif fam == "lognormal":
        if p["sigma"] == 0:
            raise DepletionError(f"tilt {key}: the nominal law is a point mass (sigma 0) and cannot be tilted")
        if q["sigma"] <= 0:
            raise DepletionError(f"tilt {key}: the proposal sigma must be > 0 (the nominal support is x > 0)")


def _check_probs(key: str, p: list[float], q: list[float], labels: tuple[str, ...] | None = None) -> None:
    for i, pk in enumerate(p):
        qk = q[i] if i < len(q) else 0.0
        if pk > 0 and qk <= 0:
            what = labels[i] if labels is not None else f"order {i}"
            raise DepletionError(
                f"tilt {key}: the proposal gives probability 0 to {what}, which has nominal probability {pk:g}; "
                f"every outcome possible under the nominal law must keep a probability > 0"
            )


def validate_tilt(params: Mapping[str, Any], tilt: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a tilt against the nominal parameters; return it in canonical form.

    Parameters
    ----------
    params : mapping
        Nominal resolved parameters (``Scenario.params``).
    tilt : mapping or None
        Parameter name (dotted for ``bystanders.CLASS.KEY``, or a nested
        ``bystanders`` table) to proposal value, in scenario syntax.

    Returns
    -------
    dict
        Dotted name to canonical proposal value (``{"dist": ...}`` tables,
        full probability lists, class tables).

    Raises
    ------
    DepletionError
        Naming the key: unknown or untiltable key, ``fixed`` family, a
        change of family, a proposal whose support does not contain the
        nominal one, or a zero proposal probability where the nominal one is
        positive.
    """
    out: dict[str, Any] = {}
    for key, v in _flatten(tilt or {}).items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "bystanders":
            c, k = parts[1], parts[2]
            if c not in CLASSES:
                raise DepletionError(f"tilt {key}: unknown class {c!r}; allowed: {', '.join(CLASSES)}")
            if k not in TILT_BYSTANDER_KEYS:
                raise DepletionError(f"tilt {key}: cannot be tilted; allowed keys: {_ALLOWED}")
            nom = params["bystanders"][c]["rate_per_ms" if k == "victim_rate_per_ms" else k]
            if k in ("rate_per_ms", "victim_rate_per_ms"):
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                    raise DepletionError(f"tilt {key}: expected a rate >= 0 (per ms), got {v!r}")
                if nom > 0 and v <= 0:
                    raise DepletionError(
                        f"tilt {key}: the proposal rate must be > 0 where the nominal rate ({nom:g}) is"
                    )
                out[key] = float(v)
            elif k == "order_probs":
                q = _probs(f"tilt {key}", v, None, MAX_ORDER + 1)
                _check_probs(key, nom, q)
                out[key] = q
            else:
                q = _dist(f"tilt {key}", v, HOLD_SPEC)
                _check_dist(key, nom, q)
                out[key] = q
        elif key in TILT_KEYS:
            nom = params[key]
            spec = SPECS[key]
            if key == "reaper_lock_p":
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                    raise DepletionError(f"tilt {key}: expected a probability in [0, 1], got {v!r}")
                if (nom > 0 and v <= 0) or (nom < 1 and v >= 1):
                    raise DepletionError(
                        f"tilt {key}: the proposal must give the lock's success and failure a probability > 0 "
                        f"wherever the nominal {nom:g} does (0 < q < 1 for 0 < p < 1)"
                    )
                q = float(v)
            elif key == "order_probs":
                q = _probs(f"tilt {key}", v, None, MAX_ORDER + 1)
                _check_probs(key, nom, q)
            elif key == "class_probs":
                lst = _probs(f"tilt {key}", v, CLASSES, len(CLASSES))
                lst = lst + [0.0] * (len(CLASSES) - len(lst))
                _check_probs(key, [nom.get(c, 0.0) for c in CLASSES], lst, CLASSES)
                q = {c: x for c, x in zip(CLASSES, lst) if x > 0}
            else:
                q = _dist(f"tilt {key}", v, spec)
                _check_dist(key, nom, q)
            out[key] = q
        else:
            raise DepletionError(f"tilt {key}: cannot be tilted (or unknown); allowed keys: {_ALLOWED}")
    for c in CLASSES:
        key = f"bystanders.{c}.victim_rate_per_ms"
        after = out.get(f"bystanders.{c}.rate_per_ms", params["bystanders"][c]["rate_per_ms"])
        if key in out and after > 0 and out[key] <= 0:
            raise DepletionError(
                f"tilt {key}: the proposal rate while victims are alive must be > 0 where the rate after "
                f"them ({after:g}) is (a stream cannot start at the switch)"
            )
    return out


def proposal_params(params: Mapping[str, Any], tilt: Mapping[str, Any] | None) -> dict[str, Any]:
    """The resolved parameters of the proposal law: ``params`` with the (validated) tilt applied."""
    canon = validate_tilt(params, tilt)
    q = copy.deepcopy(dict(params))
    for key, v in canon.items():
        parts = key.split(".")
        if len(parts) == 3:
            q["bystanders"][parts[1]][parts[2]] = copy.deepcopy(v)
        else:
            q[key] = copy.deepcopy(v)
    return q


def tilt_orders(probs: list[float], mean_pages: float) -> list[float]:
    """Exponential tilt of an order distribution toward a mean request size.

    ``q_k ∝ p_k exp(theta 2**k)``, with ``theta`` solved (bisection) so that
    the mean size ``sum q_k 2**k`` is ``mean_pages``. This is the classical
    efficient proposal for "a sum of request sizes exceeds a level" (Cramér):
    aim ``mean_pages`` at level / number of requests. ``q`` keeps the
    support of ``p``.

    Parameters
    ----------
    probs : list of float
        Nominal order probabilities (order 0 first).
    mean_pages : float
        Target mean size in pages, strictly between the smallest and the
        largest size with positive probability.

    Returns
    -------
    list of float
    """
    p = np.asarray(probs, dtype=np.float64)
    s = 2.0 ** np.arange(p.shape[0])
    pos = p > 0
    if not s[pos].min() < mean_pages < s[pos].max():
        raise DepletionError(
            f"tilt_orders: mean_pages {mean_pages:g} must lie strictly between {s[pos].min():g} and {s[pos].max():g}"
        )

    def q_of(theta: float) -> np.ndarray:
        lq = np.where(pos, np.log(np.where(pos, p, 1.0)) + theta * s, -np.inf)
        q = np.exp(lq - lq.max())
        return q / q.sum()

    lo, hi = -50.0, 50.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float(q_of(mid) @ s) < mean_pages:
            lo = mid
        else:
            hi = mid
    q = q_of(0.5 * (lo + hi))
    q = np.where(pos, np.maximum(q, 1e-300), 0.0)
    q = q / q.sum()
    return [float(x) for x in q]


# ------------------------------------------------------------- exact sums
class _ExactSum:
    """An exact, order-independent sum of float64 values (vectorised).

    Each value is split by :func:`numpy.frexp` into an integer mantissa
    (``|m| < 2**53``) and a binary exponent; the mantissas are summed as
    two int64 halves in one bucket per exponent, which is exact for up to
    2**36 values per bucket. So the total does not depend on the order or
    the grouping of the values: chunk size and thread count change nothing.
    """

    _OFF = 1100  # frexp exponents lie in [-1073, 1024]
    _MASK = np.int64((1 << 26) - 1)

    def __init__(self) -> None:
        self.hi = np.zeros(2 * self._OFF, dtype=np.int64)
        self.lo = np.zeros(2 * self._OFF, dtype=np.int64)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        x = x[x != 0.0]
        if x.size == 0:
            return
        if not np.all(np.isfinite(x)):
            raise DepletionError("weights overflow (log_weight > 709): the tilt is far too strong")
        m, e = np.frexp(x)
        mi = (m * 9007199254740992.0).astype(np.int64)  # m * 2**53, an exact integer
        idx = e.astype(np.int64) + self._OFF
        np.add.at(self.hi, idx, mi >> 26)
        np.add.at(self.lo, idx, mi & self._MASK)

    def value(self) -> Fraction:
        total = Fraction(0)
        for i in np.nonzero((self.hi != 0) | (self.lo != 0))[0]:
            v = (int(self.hi[i]) << 26) + int(self.lo[i])
            total += Fraction(v) * Fraction(2) ** (int(i) - self._OFF - 53)
        return total


def _outcome(rows: np.ndarray, outcome: str) -> np.ndarray:
    from depletion.engine import COL

    if outcome == "victim_failed":
        return rows[:, COL["victim_failures"]] > 0
    if outcome == "bystander_failed":
        return np.any(rows[:, [COL[f"bystander_failures.{c}"] for c in CLASSES]] > 0, axis=1)
    return rows[:, COL[outcome]] > 0


# -------------------------------------------------------------- estimator
def estimate_rare(
    scenario: Scenario | str | Path | None,
    policy: str,
    tilt: Mapping[str, Any] | None,
    episodes: int,
    seed: int = 0,
    *,
    outcome: str = "exhausted",
    confidence: float = 0.95,
    chunk_size: int = 65536,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Importance-sampling estimate of the probability of a 0/1 outcome.

    Episodes ``0 .. episodes - 1`` of ``seed`` are drawn from the tilted law
    (common random numbers: every policy sees the same tilted workload) and
    weighted by ``w = exp(log_weight)``. The estimate is the mean of
    ``1{outcome} * w``, the interval the normal one on that mean with the
    sample variance; the sums are exact (:class:`_ExactSum`), so the result
    depends only on ``(scenario, policy, tilt, episodes, seed)``, not on
    ``chunk_size`` or the thread count. With an empty tilt every weight is 1
    and ``p`` is the plain proportion, bit for bit.

    Parameters
    ----------
    scenario : Scenario, str, Path or None
        A loaded scenario, a TOML path, or ``None`` for MODEL.md's defaults.
    policy : str
        Policy name.
    tilt : mapping or None
        The proposal (see the module docstring and :func:`validate_tilt`).
    episodes : int
        Episodes (>= 2).
    seed : int
        Seed, 0 <= seed < 2**64.
    outcome : str
        One of :data:`OUTCOMES`.
    confidence : float
        Interval level in (0, 1).
    chunk_size : int
        Episodes per kernel call (memory only).
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk.

    Returns
    -------
    dict
        ``p``, ``ci_low`` (clipped at 0), ``ci_high``, ``se``, ``rel_err``
        (``se / p``; inf when ``p = 0``), ``n``, ``hits`` (episodes with the
        outcome), ``ess`` (``(sum w)**2 / sum w**2`` over hits),
        ``mean_weight`` and ``mean_weight_se`` (mean of ``w`` over all
        episodes: 1 within a few standard errors for a sound tilt),
        ``plain_equivalent`` (plain episodes for the same standard error,
        ``p (1 - p) / se**2``), ``method``, ``outcome``, ``policy``, ``seed``,
        ``confidence`` and ``tilt`` (canonical).

    Raises
    ------
    DepletionError
        For a bad tilt, policy, outcome or option.
    """
    from depletion.engine import COL, build_inputs, simulate_rows

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if outcome not in OUTCOMES:
        raise DepletionError(f"outcome: unknown {outcome!r}; allowed: {', '.join(OUTCOMES)}")
    check_whole("episodes", episodes, 2)
    check_whole("seed", seed, 0, 2**64, "2**64")
    check_whole("chunk_size", chunk_size, 1)
    if not 0.0 < confidence < 1.0:
        raise DepletionError(f"confidence: {confidence} must be in (0, 1)")
    try:
        parse_policy(policy)
    except (ValueError, TypeError) as e:
        raise DepletionError(f"policy: {e}") from None
    params = scenario.params
    canon = validate_tilt(params, tilt)
    inputs = build_inputs(params, policy, proposal=proposal_params(params, canon))

    s1, s2, sw, sww = _ExactSum(), _ExactSum(), _ExactSum(), _ExactSum()
    hits = 0
    start = 0
    while start < episodes:
        n = int(min(chunk_size, episodes - start))
        rows = simulate_rows(inputs, int(seed), start, n)
        w = np.exp(rows[:, COL["log_weight"]])
        y = _outcome(rows, outcome)
        wy = w[y]
        hits += int(np.count_nonzero(y))
        s1.add(wy)
        s2.add(wy * wy)
        sw.add(w)
        sww.add(w * w)
        start += n
        if progress is not None:
            progress(start, int(episodes))

    N = int(episodes)
    S1, S2, SW, SWW = s1.value(), s2.value(), sw.value(), sww.value()
    mean = S1 / N
    var = (S2 - S1 * S1 / N) / (N - 1)  # sample variance of 1{outcome} * w, exact
    var_w = (SWW - SW * SW / N) / (N - 1)
    p = float(mean)
    se = math.sqrt(float(var) / N)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return {
        "p": p,
        "ci_low": max(0.0, p - z * se),
        "ci_high": p + z * se,
        "se": se,
        "rel_err": se / p if p > 0 else math.inf,
        "n": N,
        "hits": hits,
        "ess": float(S1 * S1 / S2) if S2 > 0 else 0.0,
        "mean_weight": float(SW / N),
        "mean_weight_se": math.sqrt(float(var_w) / N),
        "plain_equivalent": p * (1.0 - p) / se**2 if se > 0 else math.inf,
        "method": "importance-sampling",
        "outcome": outcome,
        "policy": policy,
        "seed": int(seed),
        "confidence": confidence,
        "tilt": canon,
    }
