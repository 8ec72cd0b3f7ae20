"""Importance sampling (depletion.rare): likelihood ratios, agreement, bad tilts.

Every statistical check below derives its tolerance from the number of
episodes through a standard error, and names its false-alarm rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import quiet_params

from depletion.config import Scenario, load_scenario
from depletion.engine import COL, build_inputs, simulate_rows
from depletion.errors import DepletionError
from depletion.rare import estimate_rare, proposal_params, tilt_orders, validate_tilt

# a small workload (2 threads, a small mm, W = 32 pages so that requests fail,
# stall and the policies differ) with every bystander stream on and a few
# non-default families, so that each kind of tilt has draws to weight; a 100 ms
# horizon keeps stalled episodes cheap (and ends some of them there)
SMALL = {
    "min_free_kbytes": 128,
    "threads": 2,
    "rss_pages": 2000,
    "horizon_us": 100_000.0,
    "bystanders.memalloc.rate_per_ms": 1.0,
    "bystanders.high.hold_us": {"dist": "lognormal", "median": 300.0, "sigma": 1.0},
    "bystanders.kernel.hold_us": {"dist": "geometric", "mean": 400.0},
    "wake_us": {"dist": "lognormal", "median": 150.0, "sigma": 0.8},
}
SMALL_GEOM = dict(SMALL, exit_allocs={"dist": "geometric", "mean": 3.0})
# lower F(0) and more threads: victims reclaim in most episodes (reclaim_round_us draws to weight)
LOW_F = dict(SMALL, f0_frac={"dist": "uniform", "low": 0.3, "high": 0.7}, threads=4)


def _weights(params, policy, tilt, n, seed, **kw):
    rows = simulate_rows(build_inputs(params, policy, proposal=proposal_params(params, tilt), **kw), seed, 0, n)
    return rows, np.exp(rows[:, COL["log_weight"]])


# ------------------------------------------------------------------ no tilt
def test_empty_tilt_is_plain_sampling_bit_for_bit():
    sc = load_scenario(None, {"min_free_kbytes": 128, "threads": 4, "order_probs": [0.8, 0.1, 0.05, 0.05]})
    n = 40_000
    plain = simulate_rows(build_inputs(sc.params, "tif_memdie"), 3, 0, n)
    k = int(plain[:, COL["exhausted"]].sum())
    assert k > 0
    # the proposal equal to the nominal law: the tilt flag is off, the rows are the plain ones
    same = build_inputs(sc.params, "tif_memdie", proposal=proposal_params(sc.params, {}))
    assert same.tilt == 0
    assert np.array_equal(simulate_rows(same, 3, 0, n), plain)
    assert (plain[:, COL["log_weight"]] == 0.0).all()
    r = estimate_rare(sc, "tif_memdie", {}, n, seed=3)
    assert r["p"] == k / n  # bit for bit
    assert r["hits"] == k and r["ess"] == k and r["mean_weight"] == 1.0 and r["mean_weight_se"] == 0.0
    assert r["se"] == pytest.approx(math.sqrt(k / n * (1 - k / n) / (n - 1)), rel=1e-12)
    # a tilt that restates the nominal values is no tilt either
    restated = {"exit_allocs": {"dist": "poisson", "mean": 4.0}, "bystanders.atomic.rate_per_ms": 5.0}
    assert build_inputs(sc.params, "tif_memdie", proposal=proposal_params(sc.params, restated)).tilt == 0


def test_estimate_does_not_depend_on_chunk_size():
    """Exact sums: any chunking gives the same numbers, bit for bit."""
    sc = load_scenario(None, SMALL)
    tilt = {"exit_allocs": 5, "bystanders.atomic.rate_per_ms": 7.0}
    a = estimate_rare(sc, "alloc_oom", tilt, 30_000, seed=2, outcome="bystander_failed")
    b = estimate_rare(sc, "alloc_oom", tilt, 30_000, seed=2, outcome="bystander_failed", chunk_size=4097)
    assert a == b


# ------------------------------------------------------- E_q[LR] = 1 per kind
# Each case tilts one kind of draw. Under the proposal, w = p/q has mean exactly
# 1 whatever the tilt, so the sample mean of w over n episodes is 1 within its
# standard error s/sqrt(n). The tilts are mild, so w has finite higher moments
# and the CLT holds at n = 100000 (stronger tilts, e.g. a windowed atomic rate of
# 12/ms instead of 5, give weights up to 1e4-1e5 whose sample mean is not yet
# normal at this n); the bound of 4.5 standard errors has a two-sided false-alarm
# rate of 7e-6 per case and policy, under 3e-4 for the whole family (Bonferroni
# over the 22 cases x 2 policies). A missing, doubled or misplaced ratio (e.g. the
# post-victim shortcut's arrivals not counted in N, a windowed stream not switched
# at the last exit) moves the mean by far more.
LR_CASES = {
    "poisson count": (SMALL, {"exit_allocs": 5.0}, {}),
    "geometric count": (SMALL_GEOM, {"exit_allocs": {"dist": "geometric", "mean": 4.0}}, {}),
    "exponential times": (SMALL, {"exit_gap_us": 65.0, "hold_us": 1300.0}, {}),
    "lognormal": (SMALL, {"wake_us": {"dist": "lognormal", "median": 220.0, "sigma": 1.0}}, {}),
    "uniform": (SMALL, {"f0_frac": {"dist": "uniform", "low": 0.5, "high": 1.1}}, {}),
    "orders": (SMALL, {"order_probs": [0.7, 0.15, 0.1, 0.05]}, {}),
    "classes": (SMALL, {"class_probs": {"kernel": 0.4, "nofs": 0.3, "noio": 0.1, "atomic": 0.1, "memalloc": 0.1}}, {}),
    "bystander rate": (SMALL, {"bystanders.atomic.rate_per_ms": 7.0, "bystanders.kernel.rate_per_ms": 1.2}, {}),
    "bystander rate from 0": (SMALL, {"bystanders.nofs.rate_per_ms": 0.4}, {}),
    "bystander orders and holds": (
        SMALL,
        {
            "bystanders.memalloc.order_probs": [0.6, 0.4],
            "bystanders.high.hold_us": {"dist": "lognormal", "median": 200.0, "sigma": 1.2},
            "bystanders.kernel.hold_us": {"dist": "geometric", "mean": 300.0},
        },
        {},
    ),
    "everything at once": (
        SMALL,
        {
            "exit_allocs": 4.6,
            "order_probs": [0.8, 0.1, 0.06, 0.04],
            "bystanders.atomic.rate_per_ms": 6.0,
            "hold_us": 1200.0,
        },
        {},
    ),  # fmt: skip
    # most episodes end at a 600 us horizon (tau = horizon, arrivals up to it counted)
    "horizon": (dict(SMALL, horizon_us=600.0), {"bystanders.atomic.rate_per_ms": 7.0, "exit_gap_us": 60.0}, {}),
    # truncation after 12 events: t_end is the time of the event that was not processed
    "truncated episodes": (SMALL, {"bystanders.atomic.rate_per_ms": 7.0, "exit_allocs": 5.0}, {"max_events": 12}),
    "group kill, sharers": (
        dict(SMALL, victims=2, mm_sharers=1, threads=1),
        {"exit_allocs": 5.0, "bystanders.atomic.rate_per_ms": 6.5},
        {},
    ),
    # each reaper attempt is a Bernoulli(reaper_lock_p) draw: p/q on success, (1-p)/(1-q) on failure
    "reaper lock": (SMALL, {"reaper_lock_p": 0.5}, {}),
    "reaper delay": (SMALL, {"reaper_delay_us": 300.0}, {}),
    "reclaim rounds": (LOW_F, {"reclaim_round_us": 600.0}, {}),
    # windowed rate tilts: rate a while a victim thread is alive, then b (the nominal rate or the tilt's
    # rate_per_ms); one Poisson-process ratio per window, the switch at the last exit (a stopping time)
    "windowed rate": (SMALL, {"bystanders.memalloc.victim_rate_per_ms": 2.0}, {}),
    "windowed rate, two rates": (
        SMALL,
        {"bystanders.atomic.victim_rate_per_ms": 7.0, "bystanders.atomic.rate_per_ms": 4.0},
        {},
    ),
    # most episodes end at a 600 us horizon before the last exit: no switch, one window up to the horizon
    "windowed rate, horizon": (dict(SMALL, horizon_us=600.0), {"bystanders.atomic.victim_rate_per_ms": 7.0}, {}),
    "windowed rate, truncated": (
        SMALL,
        {"bystanders.atomic.victim_rate_per_ms": 7.0, "reaper_lock_p": 0.6},
        {"max_events": 12},
    ),
    "windowed rate, group kill, reaper": (
        dict(SMALL, victims=2, mm_sharers=1, threads=1),
        {"bystanders.memalloc.victim_rate_per_ms": 2.0, "reaper_lock_p": 0.7, "reaper_delay_us": 150.0},
        {},
    ),
}


@pytest.mark.parametrize("case", list(LR_CASES))
def test_likelihood_ratio_has_mean_one(case):
    over, tilt, kw = LR_CASES[case]
    params = load_scenario(None, over).params
    n = 100_000
    for policy, seed in (("alloc_oom", 21), ("tif_memdie", 22)):
        rows, w = _weights(params, policy, tilt, n, seed, **kw)
        lw = rows[:, COL["log_weight"]]
        assert np.isfinite(lw).mean() > 0.4 and (lw != 0).mean() > 0.2, "the tilt changed no draw"
        se = w.std(ddof=1) / math.sqrt(n)
        assert abs(w.mean() - 1.0) < 4.5 * se, f"{case}/{policy}: E[w] = {w.mean():.5f} +- {se:.5f}"
        if kw.get("max_events"):
            assert rows[:, COL["truncated"]].mean() > 0.3
        if over.get("horizon_us", 0) < 1000:
            assert (rows[:, COL["resolve_us"]] >= over["horizon_us"]).mean() > 0.3


def test_bystander_rate_tilt_reweights_a_common_outcome():
    """E_q[1{A} w] = P_p(A) for A = "some bystander request failed", which depends on the
    whole arrival process up to the episode's end (also through the post-victim
    shortcut). Plain and tilted estimates on independent seeds, n = 200000
    each, agree within 4 combined standard errors (false alarm 6e-5)."""
    sc = load_scenario(None, SMALL)
    n = 200_000
    tilt = {"bystanders.atomic.rate_per_ms": 7.0, "bystanders.memalloc.rate_per_ms": 1.5}
    for policy in ("alloc_oom", "tif_memdie"):
        a = estimate_rare(sc, policy, {}, n, seed=31, outcome="bystander_failed")
        b = estimate_rare(sc, policy, tilt, n, seed=32, outcome="bystander_failed")
        assert 0.01 < a["p"] < 0.99
        z = (b["p"] - a["p"]) / math.hypot(a["se"], b["se"])
        assert abs(z) < 4, (policy, a["p"], b["p"], z)


# ---------------------------------------------------- agreement near 1e-3
def test_agrees_with_plain_sampling_near_1e_3():
    """tif_memdie on a small box: W = 32 pages, 4 threads, heavier orders.

    Plain P(exhausted) is about 6e-4. The proposal tilts the request sizes
    exponentially (mean 2.2 pages instead of 1.75) and raises the request
    count (Poisson mean 5 instead of 4): exhaustion is "the TIF_MEMDIE
    threads' held pages exceed F", a sum, and this is the classical
    proposal for it. Independent seeds, n = 400000 each: the estimates agree
    within 4 combined standard errors (two-sided false alarm 6e-5), and IS's
    relative error is smaller at equal n (by about 1.8x here; the standard
    errors themselves are estimated within a few percent at these hit
    counts, so the comparison is not a coin toss). alloc_oom: the next test.
    """
    op = [0.8, 0.1, 0.05, 0.05]
    sc = load_scenario(None, {"min_free_kbytes": 128, "threads": 4, "rss_pages": 2048, "order_probs": op})
    n = 400_000
    plain = estimate_rare(sc, "tif_memdie", {}, n, seed=41)
    tilt = {"order_probs": tilt_orders(op, 2.2), "exit_allocs": 5.0}
    imp = estimate_rare(sc, "tif_memdie", tilt, n, seed=42)
    assert 2e-4 < plain["p"] < 3e-3 and plain["hits"] > 100
    assert imp["hits"] > 5 * plain["hits"]  # the event is common under the proposal
    z = (imp["p"] - plain["p"]) / math.hypot(plain["se"], imp["se"])
    assert abs(z) < 4, (plain["p"], imp["p"], z)
    assert imp["rel_err"] < plain["rel_err"]
    assert imp["method"] == "importance-sampling" and imp["tilt"]["exit_allocs"] == {"dist": "poisson", "mean": 5.0}


# the alloc_oom family of benchmarks/rare.py: a W = 32 page box whose 4-thread victim
# dies under PF_MEMALLOC traffic of multi-page requests (orders 0-3, held 1 ms)
MEMALLOC_OP = [0.5, 0.2, 0.2, 0.1]


def memalloc_box(rate_per_ms: float) -> Scenario:
    """The W = 32 box with PF_MEMALLOC bystanders at ``rate_per_ms`` (see benchmarks/rare.py)."""
    return load_scenario(
        None,
        {"min_free_kbytes": 128, "threads": 4, "rss_pages": 2048, "bystanders.memalloc.rate_per_ms": rate_per_ms,
         "bystanders.memalloc.order_probs": MEMALLOC_OP, "bystanders.memalloc.hold_us": 1000.0},
    )  # fmt: skip


def test_alloc_oom_agrees_with_plain_sampling_near_1e_3():
    """alloc_oom (per-mm reserves): plain P(exhausted) is about 1e-3 with PF_MEMALLOC traffic at 2.5/ms.

    Under alloc_oom only NO_WATERMARKS (memalloc) requests can take F below
    the atomic floor, and a hit needs two things: the reaper's first
    mmap-lock attempt fails (nominal 0.1; otherwise it frees the mm within
    microseconds and the next try is 100 ms later) and, while the victims
    stall, PF_MEMALLOC pages held at once reach F. The proposal tilts the
    first by the Bernoulli ratio (reaper_lock_p 0.2, i.e. failure 0.8) and
    the second gently: the memalloc rate only while victim threads are alive
    (windowed, 3/ms) and its sizes toward a mean of 3.2 pages. Independent
    seeds, n = 400000 each: within 4 combined standard errors (two-sided
    false alarm 6e-5), and IS's relative error is smaller at equal n (about
    2.7x here: 0.018 against 0.050; the standard errors are estimated within
    a few percent at these hit counts, so the comparison is not a coin toss).
    """
    sc = memalloc_box(2.5)
    n = 400_000
    plain = estimate_rare(sc, "alloc_oom", {}, n, seed=61)
    tilt = {
        "reaper_lock_p": 0.2,
        "bystanders.memalloc.victim_rate_per_ms": 3.0,
        "bystanders.memalloc.order_probs": tilt_orders(MEMALLOC_OP, 3.2),
    }
    imp = estimate_rare(sc, "alloc_oom", tilt, n, seed=62)
    assert 3e-4 < plain["p"] < 3e-3 and plain["hits"] > 100
    assert imp["hits"] > 10 * plain["hits"] and imp["ess"] > 500
    z = (imp["p"] - plain["p"]) / math.hypot(plain["se"], imp["se"])
    assert abs(z) < 4, (plain["p"], imp["p"], z)
    assert imp["rel_err"] < plain["rel_err"]
    assert abs(imp["mean_weight"] - 1.0) < 4.5 * imp["mean_weight_se"]


def test_agrees_with_exact_answer_near_1e_9():
    """MODEL.md section 11's degenerate workload: 20 threads of tif_memdie_all each make
    one request at t = 0 and nothing is freed, so exhausted iff the 20 sizes sum to at
    least F(0) = 69: P = 1.50e-9 by a 20-fold convolution. IS with the exponentially
    tilted sizes (mean 69/20 pages) over n = 100000 episodes: within 4 of its standard
    errors of the exact value (false alarm 6e-5), and a relative error under 5% (it is
    about 1%; plain sampling would need ~4e12 episodes for that)."""
    n_thr, F0 = 20, 69
    params = quiet_params(
        min_free_kbytes=1024, f0_frac=F0 / 256, threads=n_thr, in_allocator_frac=1.0,
        exit_allocs={"dist": "fixed", "value": 1}, hold_us={"dist": "fixed", "value": 1e12},
        exit_gap_us={"dist": "fixed", "value": 1e12}, reaper=False, teardown_pages_per_us=0.0,
        horizon_us=1e6, class_probs={"kernel": 1.0},
    )  # fmt: skip
    probs = [0.90, 0.07, 0.02, 0.01]
    size = np.zeros(9)
    size[[1, 2, 4, 8]] = probs
    pmf = np.array([1.0])
    for _ in range(n_thr):
        pmf = np.convolve(pmf, size)
    exact = float(pmf[F0:].sum())
    r = estimate_rare(
        Scenario(params), "tif_memdie_all", {"order_probs": tilt_orders(probs, F0 / n_thr)}, 100_000, seed=5
    )
    assert abs(r["p"] - exact) < 4 * r["se"], (r["p"], exact, r["se"])
    assert r["rel_err"] < 0.05
    assert r["ci_low"] <= exact <= r["ci_high"] or abs(r["p"] - exact) < 4 * r["se"]


# ------------------------------------------------------------------ bad tilts
BAD = [
    ({"threads": 8}, "threads"),
    ({"bystanders.atomic.rate": 1.0}, "bystanders.atomic.rate"),
    ({"bystanders.dma.rate_per_ms": 1.0}, "bystanders.dma.rate_per_ms"),
    ({"f0_frac": 0.5}, "f0_frac"),  # a bare number is 'fixed' for f0_frac: family change
    ({"exit_gap_us": {"dist": "poisson", "mean": 50}}, "exit_gap_us"),  # family change
    ({"f0_frac": {"dist": "uniform", "low": 0.75, "high": 1.0}}, "f0_frac"),  # support [0.7, 1] not covered
    ({"exit_allocs": {"dist": "poisson", "mean": 0.0}}, "exit_allocs"),  # support {0} only
    ({"hold_us": {"dist": "exponential", "mean": 0.0}}, "hold_us"),
    ({"bystanders.atomic.rate_per_ms": 0.0}, "bystanders.atomic.rate_per_ms"),  # nominal 5/ms
    ({"order_probs": [1.0]}, "order_probs"),  # q = 0 where p > 0
    ({"class_probs": {"kernel": 0.7, "nofs": 0.3}}, "class_probs"),  # noio, atomic lost
    ({"bystanders.atomic.order_probs": [0.0, 1.0]}, "bystanders.atomic.order_probs"),
    ({"bystanders.kernel.hold_us": {"dist": "fixed", "value": 5}}, "bystanders.kernel.hold_us"),
    ({"order_probs": [0.5, 0.5, 0.5]}, "order_probs"),  # not a distribution
    ({"reaper_lock_p": 1.0}, "reaper_lock_p"),  # nominal 0.9: failures would never be drawn
    ({"reaper_lock_p": 0.0}, "reaper_lock_p"),  # successes would never be drawn
    ({"reaper_lock_p": 1.5}, "reaper_lock_p"),
    ({"reaper_retry_us": 5.0}, "reaper_retry_us"),  # not tiltable
    ({"reclaim_round_us": {"dist": "lognormal", "median": 500, "sigma": 1}}, "reclaim_round_us"),  # family change
    ({"bystanders.atomic.victim_rate_per_ms": 0.0}, "bystanders.atomic.victim_rate_per_ms"),  # nominal 5/ms
    # a stream that would start only at the switch (rate 0 while victims are alive, > 0 after)
    (
        {"bystanders.nofs.victim_rate_per_ms": 0.0, "bystanders.nofs.rate_per_ms": 1.0},
        "bystanders.nofs.victim_rate_per_ms",
    ),
]


@pytest.mark.parametrize("tilt,key", BAD, ids=[k for _, k in BAD])
def test_bad_tilt_raises_naming_the_key(tilt, key):
    params = load_scenario(None).params
    with pytest.raises(DepletionError, match=f"tilt {key}"):
        validate_tilt(params, tilt)


def test_fixed_nominal_cannot_be_tilted():
    params = load_scenario(None, {"exit_allocs": {"dist": "fixed", "value": 3}}).params
    with pytest.raises(DepletionError, match="tilt exit_allocs: the nominal distribution is 'fixed'"):
        validate_tilt(params, {"exit_allocs": {"dist": "fixed", "value": 4}})
    point = load_scenario(None, {"f0_frac": {"dist": "uniform", "low": 0.8, "high": 0.8}}).params
    with pytest.raises(DepletionError, match="tilt f0_frac: the nominal law is a point mass"):
        validate_tilt(point, {"f0_frac": {"dist": "uniform", "low": 0.5, "high": 1.0}})


def test_good_tilts_are_canonical():
    params = load_scenario(None).params
    t = validate_tilt(
        params,
        {"exit_allocs": 6, "bystanders": {"memalloc": {"rate_per_ms": 2}}, "class_probs": {"kernel": 0.5,
         "nofs": 0.3, "noio": 0.1, "atomic": 0.1}},
    )  # fmt: skip
    assert t["exit_allocs"] == {"dist": "poisson", "mean": 6.0}
    assert t["bystanders.memalloc.rate_per_ms"] == 2.0
    assert t["class_probs"] == {"kernel": 0.5, "nofs": 0.3, "noio": 0.1, "atomic": 0.1}
    # a nominal rate of 0 may be tilted up (the nominal law is absolutely continuous w.r.t. it)
    assert validate_tilt(params, {"bystanders.nofs.rate_per_ms": 0.5}) == {"bystanders.nofs.rate_per_ms": 0.5}
    t = validate_tilt(
        params,
        {"reaper_lock_p": 0.3, "reclaim_round_us": 900, "reaper_delay_us": {"dist": "exponential", "mean": 1e3},
         "bystanders.memalloc.victim_rate_per_ms": 3},
    )  # fmt: skip
    assert t == {
        "reaper_lock_p": 0.3,
        "reclaim_round_us": {"dist": "exponential", "mean": 900.0},
        "reaper_delay_us": {"dist": "exponential", "mean": 1000.0},
        "bystanders.memalloc.victim_rate_per_ms": 3.0,
    }
    # a lock probability of 1 may be tilted down, one of 0 up (the other outcome has nominal probability 0)
    sure = load_scenario(None, {"reaper_lock_p": 1.0}).params
    assert validate_tilt(sure, {"reaper_lock_p": 0.5}) == {"reaper_lock_p": 0.5}
    # restating the nominal values is no tilt: the kernel runs untilted
    same = {"reaper_lock_p": 0.9, "reclaim_round_us": 500.0, "bystanders.memalloc.victim_rate_per_ms": 0.05}
    assert build_inputs(params, "alloc_oom", proposal=proposal_params(params, same)).tilt == 0


def test_bad_options_raise():
    with pytest.raises(DepletionError, match="outcome"):
        estimate_rare(None, "alloc_oom", {}, 10, outcome="min_free")
    with pytest.raises(DepletionError, match="episodes"):
        estimate_rare(None, "alloc_oom", {}, 1)
    with pytest.raises(DepletionError, match="policy"):
        estimate_rare(None, "no_such_policy", {}, 10)
    with pytest.raises(DepletionError, match="tilt_orders"):
        tilt_orders([0.9, 0.1], 3.0)
