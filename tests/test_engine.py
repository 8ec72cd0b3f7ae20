"""The episode kernel: exact answers, invariants, determinism, common random numbers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_pmf_matches, assert_proportion_matches, quiet_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depletion.config import load_scenario
from depletion.engine import COL, build_inputs, run_episodes, simulate_rows

POLICIES = ["tif_memdie", "tif_memdie_all", "alloc_oom", "nommu", "v6", "fraction:0.25"]


# ----------------------------------------------------------------- exact answers
def _degenerate(n_threads: int, f0_frac: float, **kw):
    """Every thread mid-request at t=0 with exactly one request; nothing is freed.

    W = 1024 kB / 4 = 256 pages. No reaper, no bystanders, holds and gaps far
    beyond the horizon, no teardown: the only thing that happens is the t = 0
    requests (and the slow path of those that fail, which frees nothing).
    """
    return quiet_params(
        min_free_kbytes=1024, f0_frac=f0_frac, threads=n_threads, in_allocator_frac=1.0,
        exit_allocs={"dist": "fixed", "value": 1}, hold_us={"dist": "fixed", "value": 1e12},
        exit_gap_us={"dist": "fixed", "value": 1e12}, reaper=False, teardown_pages_per_us=0.0,
        horizon_us=1e6, class_probs={"kernel": 1.0}, **kw,
    )  # fmt: skip


SIZES = np.array([1, 2, 4, 8])
ORDER_P = np.array([0.90, 0.07, 0.02, 0.01])


def _size_pmf() -> np.ndarray:
    pmf = np.zeros(9)
    pmf[SIZES] = ORDER_P
    return pmf


def test_exhaustion_is_a_sum_of_request_sizes():
    """tif_memdie_all: every thread digs with NO_WATERMARKS from F(0) = 26.

    The reserves are exhausted iff the 20 request sizes sum to at least F(0)
    (F hits 0 exactly, or the request that would cross 0 fails). The exact
    probability is a 20-fold convolution of the size distribution.
    """
    n, F0 = 20, 26
    params = _degenerate(n, 0.1)
    pmf = np.array([1.0])
    for _ in range(n):
        pmf = np.convolve(pmf, _size_pmf())
    p_exact = float(pmf[F0:].sum())
    r = run_episodes(params, "tif_memdie_all", 20000, seed=11)
    assert (r["F0"] == F0).all()
    assert_proportion_matches(int(r["exhausted"].sum()), 20000, p_exact)
    # every thread held NO_WATERMARKS from kill time
    assert (r["full_reserve_threads"] == n).all()


def _failure_pmf(n: int, F0: int, floor: int) -> np.ndarray:
    """Exact distribution of failed requests when each of ``n`` sequential requests
    of random size s succeeds iff F - s >= floor (ALLOC_OOM: free - (s-1) > min/2)."""
    # state: (F, failures) probabilities
    dist = {(F0, 0): 1.0}
    for _ in range(n):
        nxt: dict = {}
        for (F, k), p in dist.items():
            for s, ps in zip(SIZES, ORDER_P):
                key = (F - s, k) if F - s >= floor else (F, k + 1)
                nxt[key] = nxt.get(key, 0.0) + p * ps
        dist = nxt
    out = np.zeros(n + 1)
    for (_, k), p in dist.items():
        out[k] += p
    return out


def test_alloc_oom_failures_match_exact_distribution():
    """alloc_oom: all threads of the victim may go down to W - W//2 = 128 pages.

    With F(0) = round(0.6 * 256) = 154 and no frees, request i fails iff the
    pages left above 128 cannot hold it; the failure count's law is computed
    exactly by dynamic programming over (F, failures).
    """
    n = 20
    params = _degenerate(n, 0.6)
    r = run_episodes(params, "alloc_oom", 20000, seed=12)
    assert (r["F0"] == 154).all()
    pmf = _failure_pmf(n, 154, 128)
    assert_pmf_matches(r["victim_failures"], pmf)
    # no victim allocation with the grant went below the ALLOC_OOM floor
    g = r["min_grant_free"]
    assert (g[g >= 0] >= 128).all()
    assert r["exhausted"].sum() == 0


def test_fraction_half_equals_alloc_oom():
    """fraction:0.5 is ALLOC_OOM's min -= min/2 (floor(0.5*min) == min//2): identical episodes."""
    params = load_scenario(None, threads=64, f0_frac=0.6).params
    a = simulate_rows(build_inputs(params, "alloc_oom"), 5, 0, 3000)
    b = simulate_rows(build_inputs(params, "fraction:0.5"), 5, 0, 3000)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- invariants
scenarios = st.fixed_dictionaries(
    {
        "memory_gib": st.sampled_from([0.25, 1.0, 4.0]),
        "threads": st.integers(1, 24),
        "victims": st.integers(1, 3),
        "mm_sharers": st.integers(0, 2),
        "rss_pages": st.integers(0, 20000),
        "in_allocator_frac": st.floats(0.0, 1.0),
        "f0_frac": st.floats(0.0, 1.3),
        "exit_allocs": st.floats(0.0, 8.0),
        "hold_us": st.floats(1.0, 5000.0),
        "teardown_pages_per_us": st.sampled_from([0.0, 0.5, 10.0]),
        "reap_pages_per_us": st.sampled_from([0.0, 1.0, 5.0]),
        "reaper_lock_p": st.floats(0.0, 1.0),
        "reaper_retry_us": st.floats(1.0, 5000.0),
        "reclaim_rounds": st.integers(0, 5),
        "reclaim_yield_pages": st.integers(0, 3),
        "order_probs": st.sampled_from([[1.0], [0.9, 0.07, 0.02, 0.01], [0.5, 0, 0, 0, 0.5]]),
        "class_probs": st.sampled_from(
            [
                {"kernel": 0.6, "nofs": 0.3, "noio": 0.05, "atomic": 0.05},
                {"nofs": 0.5, "nomemalloc": 0.2, "memalloc": 0.1, "high": 0.1, "nofail": 0.1},
            ]
        ),
        "bystanders.atomic.rate_per_ms": st.sampled_from([0.0, 5.0, 50.0]),
        "bystanders.memalloc.rate_per_ms": st.sampled_from([0.0, 0.5]),
        "horizon_us": st.sampled_from([2e4, 2e5]),
        "highatomic_pages": st.sampled_from([0, 16]),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios, policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**32))
def test_invariants_hold_in_every_episode(raw, policy, seed):
    """Page conservation, F >= 0, frees bounded by their sources, outcome ranges,
    and the ALLOC_OOM floor for grant allocations, in every episode."""
    params = load_scenario(None, raw).params
    r = run_episodes(params, policy, 150, seed)
    freed = r["freed_hold"] + r["freed_exit"] + r["freed_mm"] + r["freed_reclaim"] + r["freed_bystander"]
    np.testing.assert_array_equal(r["F_end"], r["F0"] - r["allocated"] + freed)
    assert (r["min_free"] >= 0).all() and (r["F_end"] >= 0).all()
    assert (r["min_free"] <= r["F0"]).all()
    assert (r["freed_mm"] <= r["rss_total"]).all()
    resolved = r["resolve_us"] < params["horizon_us"]
    np.testing.assert_array_equal(r["freed_mm"][resolved], r["rss_total"][resolved])
    # a thread frees at most what it holds plus its stack
    assert (r["freed_hold"] + r["freed_exit"] <= r["allocated"] + params["stack_pages"] * r["n_threads"]).all()
    for k in ("exhausted", "stalled", "reaper_gave_up"):
        assert set(np.unique(r[k])) <= {0.0, 1.0}
    assert (r["full_reserve_threads"] <= r["n_threads"]).all()
    assert (r["victim_failures"] <= r["victim_requests"]).all()
    assert (r["max_stall_us"] >= 0).all() and (r["max_stall_us"] <= params["horizon_us"]).all()
    assert (r["truncated"] == 0).all()
    W = r["W"][0]
    if policy in ("alloc_oom", "v6"):
        g = r["min_grant_free"]
        assert (g[g >= 0] >= W - W // 2).all()
        assert (r["full_reserve_threads"] == 0).all()
    if policy == "fraction:0.25":
        g = r["min_grant_free"]
        assert (g[g >= 0] >= W - np.floor(0.25 * W)).all()
    if policy == "nommu" or not params["reaper"]:
        assert (r["reaper_gave_up"] == 0).all()
    exhausted_at_start = r["F0"] <= params["exhaustion_floor"]
    assert (r["exhausted"][exhausted_at_start] == 1).all()


# ----------------------------------------------------------------- determinism and CRN
def test_chunking_and_blocks_do_not_change_results(default_params):
    inp = build_inputs(default_params, "tif_memdie")
    whole = simulate_rows(inp, 7, 0, 3000, nblocks=1)
    parts = np.concatenate([simulate_rows(inp, 7, 0, 1234, nblocks=5), simulate_rows(inp, 7, 1234, 1766, nblocks=3)])
    np.testing.assert_array_equal(whole, parts)


def test_thread_count_does_not_change_results(default_params):
    import numba

    inp = build_inputs(default_params, "alloc_oom")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate_rows(inp, 3, 100, 2000)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = simulate_rows(inp, 3, 100, 2000, nblocks=64)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_policies_see_the_same_workload(default_params):
    """Common random numbers: the same episode index has the same F(0), threads and rss."""
    rows = {p: simulate_rows(build_inputs(default_params, p), 9, 0, 500) for p in ("tif_memdie", "alloc_oom", "nommu")}
    for c in ("F0", "n_threads", "rss_total", "W"):
        a = rows["tif_memdie"][:, COL[c]]
        for p in ("alloc_oom", "nommu"):
            np.testing.assert_array_equal(a, rows[p][:, COL[c]])
    # and the policies do differ in what happens
    assert not np.array_equal(rows["tif_memdie"][:, COL["max_stall_us"]], rows["alloc_oom"][:, COL["max_stall_us"]])


def test_seed_changes_results(default_params):
    inp = build_inputs(default_params, "tif_memdie")
    a = simulate_rows(inp, 1, 0, 200)
    b = simulate_rows(inp, 2, 0, 200)
    assert not np.array_equal(a[:, COL["F0"]], b[:, COL["F0"]])


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_runs_the_stress_scenario(policy):
    sc = load_scenario("configs/tetsuo-1000-threads.toml")
    r = run_episodes(sc.params, policy, 40, 1)
    assert (r["n_threads"] == 1000).all()
    assert (r["truncated"] == 0).all()


def test_stress_scenario_shows_the_trade_off():
    """tif_memdie exhausts the reserves in the stress case, alloc_oom never does but fails victims."""
    sc = load_scenario("configs/tetsuo-1000-threads.toml")
    a = run_episodes(sc.params, "tif_memdie", 300, 1)
    b = run_episodes(sc.params, "alloc_oom", 300, 1)
    assert a["exhausted"].mean() > 0.2
    assert b["exhausted"].sum() == 0
    assert (b["victim_failures"] > 0).mean() > 0.2
    # grant allocations stop at the ALLOC_OOM floor (atomic first tries and bystanders may go deeper)
    g = b["min_grant_free"]
    assert (g[g >= 0] >= b["W"][0] - b["W"][0] // 2).all()


def test_no_reaper_under_nommu_and_reaper_false():
    params = quiet_params(reaper_lock_p=0.0, reaper_retry_us=1.0, threads=2)
    r = run_episodes(params, "alloc_oom", 200, 4)
    assert (r["reaper_gave_up"] == 1).all()  # p = 0: every attempt fails
    r = run_episodes(params, "nommu", 200, 4)
    assert (r["reaper_gave_up"] == 0).all()
    r = run_episodes(load_scenario(None, reaper=False, reaper_lock_p=0.0).params, "alloc_oom", 200, 4)
    assert (r["reaper_gave_up"] == 0).all()


def test_reaper_give_up_probability():
    """Give-up probability per mm is (1 - p)**retries (MODEL.md section 13)."""
    params = quiet_params(reaper_lock_p=0.5, reaper_retries=3, reaper_retry_us=10.0, rss_pages=10**6,
                          teardown_pages_per_us=1.0, horizon_us=1e5, threads=1)  # fmt: skip
    n = 8000
    r = run_episodes(params, "alloc_oom", n, 21)
    assert_proportion_matches(int(r["reaper_gave_up"].sum()), n, 0.5**3)


def test_horizon_counts_as_stall():
    params = quiet_params(teardown_pages_per_us=0.0, horizon_us=5e4, threads=2)
    r = run_episodes(params, "alloc_oom", 100, 2)
    assert (r["stalled"] == 1).all() and (r["resolve_us"] == 5e4).all()
