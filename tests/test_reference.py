"""Tests of the plain-Python reference (tests/reference.py) on its own.

Degenerate scenarios with exact answers (deterministic, or computed exactly
with numpy/scipy and checked against a Wilson interval or a goodness-of-fit
test), table tests of the watermark arithmetic, and invariants. Every random
test uses a fixed seed, so the file is deterministic; the tolerances are set
so that a correct reference would fail a given test for fewer than about 1 in
10,000 seeds (z = 4.5 or p < 1e-4), i.e. a false alarm probability under
1e-3 for the whole file.
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import reference as ref  # noqa: E402

from depletion.config import load_scenario  # noqa: E402

ALL_POLICIES = ("tif_memdie", "tif_memdie_all", "alloc_oom", "nommu", "v6", "fraction:0.25")
NO_BYSTANDERS = {f"bystanders.{c}.rate_per_ms": 0.0 for c in ref.CLASSES}
Z = 4.5  # two-sided normal quantile of a 6.8e-6 false alarm probability per check


def params(**kw) -> dict:
    return load_scenario(**kw).params


def fixed(v) -> dict:
    return {"dist": "fixed", "value": v}


def wilson(k: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def gof_pvalue(observed_values: np.ndarray, pmf: dict[int, float]) -> float:
    """Chi-square goodness of fit of integer samples to an exact pmf (bins merged to expected >= 5)."""
    n = len(observed_values)
    keys = sorted(pmf)
    assert set(np.unique(observed_values)).issubset(set(keys)), "value outside the exact support"
    obs, exp, o_acc, e_acc = [], [], 0, 0.0
    for k in keys:
        o_acc += int(np.sum(observed_values == k))
        e_acc += n * pmf[k]
        if e_acc >= 5:
            obs.append(o_acc)
            exp.append(e_acc)
            o_acc, e_acc = 0, 0.0
    if e_acc > 0 or o_acc > 0:
        if exp:
            obs[-1] += o_acc
            exp[-1] += e_acc
        else:
            obs.append(o_acc)
            exp.append(e_acc)
    if len(obs) < 2:
        return 1.0
    exp_arr = np.array(exp)
    exp_arr *= sum(obs) / exp_arr.sum()
    return float(stats.chisquare(obs, exp_arr).pvalue)


# ---------------------------------------------------------------------------
# Watermark arithmetic and derived parameters


@pytest.mark.parametrize(
    "era, cls, order, ha, threshold",
    [
        # threshold: the smallest F for which the request passes at W = 4096
        ("v4.13", "kernel", 0, 0, 4097),
        ("v4.13", "kernel", 2, 0, 4100),  # free = F - 3 > 4096
        ("v4.13", "kernel", 0, 100, 4097),  # order-0 fast path: F > W and F > highatomic
        ("v4.14", "kernel", 0, 5000, 5001),
        ("v4.13", "kernel", 1, 100, 4198),  # free = F - 1 - highatomic > 4096
        ("v4.14", "nofs", 2, 100, 4200),
        ("v4.13", "high", 0, 0, 2049),
        ("v4.13", "high", 0, 100, 2149),  # the full check, not the fast path, decides
        ("v4.14", "high", 0, 3000, 4097),  # full check: 5049; fast path: 4097
        ("v4.13", "atomic", 0, 0, 1537),  # 4096 - 2048 - 512: 3/8 of W
        ("v4.13", "atomic", 0, 100, 1537),  # ALLOC_HARDER ignores highatomic
        ("v4.14", "atomic", 1, 0, 1538),
        ("v4.14", "nofs", 0, 0, 4097),
        ("v4.14", "nomemalloc", 0, 0, 4097),
        ("v6", "kernel", 0, 100, 4197),  # v6 subtracts highatomic in its fast path too
        ("v6", "nofs", 0, 5000, 9097),
        ("v6", "high", 0, 0, 2049),
        ("v6", "high", 0, 100, 2049),  # MIN_RESERVE is in ALLOC_RESERVES
        ("v6", "atomic", 0, 0, 1537),
        ("v6", "atomic", 3, 0, 1544),
        ("v6", "memalloc", 0, 0, 1),
        ("v4.13", "memalloc", 3, 0, 8),  # NO_WATERMARKS: F >= 2**k
    ],
)
def test_watermark_table_classes(era, cls, order, ha, threshold):
    flags = ref.class_flags(cls, era, order)
    assert ref.watermark_ok(threshold, order, flags, era, 4096, ha)
    assert not ref.watermark_ok(threshold - 1, order, flags, era, 4096, ha)


@pytest.mark.parametrize(
    "era, flags, w, frac, threshold",
    [
        ("v4.14", ref.OOM, 4096, 0.5, 2049),  # ALLOC_OOM: half of min
        ("v4.14", ref.OOM, 33, 0.5, 18),  # 33 - 16 = 17
        ("v6", ref.OOM, 4096, 0.5, 2049),
        ("v6", ref.OOM, 33, 0.5, 18),
        ("v4.14", ref.FRACTION, 4096, 0.25, 3073),  # min -= floor(0.25 * min)
        ("v4.14", ref.FRACTION, 33, 0.25, 26),  # 33 - 8 = 25
        ("v4.14", ref.FRACTION, 4096, 1.0, 1),
        ("v4.14", ref.FRACTION, 4096, 0.0, 4097),
        ("v4.14", ref.HIGH | ref.HARDER, 33, 0.5, 14),  # 33 - 16 = 17, 17 - 4 = 13
        ("v4.14", ref.NO_WATERMARKS, 4096, 0.5, 1),
    ],
)
def test_watermark_table_grants(era, flags, w, frac, threshold):
    assert ref.watermark_ok(threshold, 0, flags, era, w, 0, frac)
    assert not ref.watermark_ok(threshold - 1, 0, flags, era, w, 0, frac)


def test_oom_flag_ignores_highatomic():
    assert ref.watermark_ok(2049, 0, ref.OOM, "v4.14", 4096, highatomic=500)
    assert ref.watermark_ok(2049, 0, ref.OOM, "v6", 4096, highatomic=500)


@pytest.mark.parametrize(
    "gib, era, w",
    [
        (16, "v4.13", 4096),  # isqrt(16 GiB in kB * 16) = 16384 kB
        (16, "v6", 4096),
        (1024, "v4.14", 16384),  # 131072 kB clamped to 65536
        (1024, "v6", 32768),  # 131072 kB (v6 clamp 262144)
        (1 / 1024, "v4.13", 32),  # clamped up to 128 kB
    ],
)
def test_min_watermark(gib, era, w):
    assert ref.min_watermark(params(memory_gib=gib), era) == w


def test_min_free_kbytes_set_directly_and_watermarks():
    assert ref.min_watermark(params(min_free_kbytes=67584), "v4.14") == 16896
    w, low, high = ref.watermarks(params(), "v4.14")
    assert (w, low, high) == (4096, 4096 + 4194, 4096 + 2 * 4194)  # d = 4194304 * 10 // 10000


def test_policy_parsing():
    assert ref.parse_policy("alloc_oom").grant == ref.OOM
    assert ref.parse_policy("nommu").grant == ref.NO_WATERMARKS and not ref.parse_policy("nommu").mmu
    assert ref.parse_policy("fraction:0.25").frac == 0.25
    assert ref.parse_policy("tif_memdie").era == "v4.13"
    assert ref.parse_policy("v6").era == "v6"
    with pytest.raises(ValueError):
        ref.parse_policy("fraction:1.5")
    with pytest.raises(ValueError):
        ref.parse_policy("nonsense")


def test_output_shape_and_W():
    p = params(memory_gib=1024.0, threads=2, horizon_us=1000.0, **NO_BYSTANDERS)
    for pol, w in (("alloc_oom", 16384), ("v6", 32768), ("tif_memdie", 16384)):
        r = ref.simulate_reference(p, pol, 3, seed=1)
        assert set(r) == set(ref.OUTCOME_KEYS) | {f"bystander_failures.{c}" for c in ref.CLASSES}
        assert all(len(v) == 3 for v in r.values())
        assert np.all(r["W"] == w)
        assert np.all(r["n_threads"] == 2)


# ---------------------------------------------------------------------------
# Exact answers: everyone in the allocator at t = 0, one request each, no frees


def _all_at_zero(n_threads: int, f0: float, orders: list[float], classes: dict, **kw) -> dict:
    """No reaper, no bystanders, nothing freed during the requests at t = 0."""
    base = dict(
        min_free_kbytes=128,  # W = 32
        f0_frac=f0, victims=1, threads=n_threads, mm_sharers=0, in_allocator_frac=1.0,
        exit_allocs=fixed(1), order_probs=orders, class_probs=classes,
        hold_us=fixed(1e12), reaper=False, rss_pages=10, teardown_pages_per_us=10.0,
        reclaim_yield_pages=0, **NO_BYSTANDERS,
    )
    base.update(kw)
    return params(**base)


def _sum_pmf(orders: list[float], n: int) -> np.ndarray:
    """pmf of the sum of n iid request sizes 2**k, k ~ orders."""
    one = np.zeros(2 ** (len(orders) - 1) + 1)
    for k, pk in enumerate(orders):
        one[2**k] += pk
    out = np.array([1.0])
    for _ in range(n):
        out = np.convolve(out, one)
    return out


@pytest.mark.parametrize("policy, cls", [("tif_memdie_all", "kernel"), ("alloc_oom", "memalloc"),
                                         ("nommu", "memalloc")])
def test_exhaustion_is_sum_against_f0(policy, cls):
    # Every thread can use NO_WATERMARKS (tif_memdie_all grant, or the memalloc class), all 8
    # requests come at t = 0 and nothing is freed before they are done, so the episode is
    # exhausted iff the sum S of the request sizes is >= F(0) = round(0.75 * 32) = 24
    # (either some partial sum hits 0 exactly, or the first request that does not fit fails
    # its NO_WATERMARKS try). P(S >= 24) is computed exactly by convolution. n = 2000
    # episodes; the Wilson interval at z = 4.5 has a half-width of about 0.04.
    orders = [0.5, 0.25, 0.15, 0.1]
    gap = fixed(1.0) if cls == "kernel" else fixed(1e9)
    p = _all_at_zero(8, fixed(0.75), orders, {cls: 1.0}, exit_gap_us=gap, horizon_us=20000.0)
    pmf = _sum_pmf(orders, 8)
    exact = float(pmf[24:].sum())
    assert 0.1 < exact < 0.9
    n = 2000
    r = ref.simulate_reference(p, policy, n, seed=11)
    assert np.all(r["F0"] == 24)
    lo, hi = wilson(int(r["exhausted"].sum()), n)
    assert lo <= exact <= hi, (exact, lo, hi)
    if cls == "memalloc":
        # no reclaim: a request that does not fit fails at once, so failures happen iff exhausted
        assert np.all((r["victim_failures"] > 0) <= (r["exhausted"] == 1))


def _sequential_fit_pmf(n: int, f0: int, items: list[tuple[float, int, int]]) -> tuple[dict, dict]:
    """Exact pmf of (#failures, final F) when n iid requests try one after the other.

    items: (probability, size, floor): the request takes ``size`` pages iff
    F - size >= floor, else it fails and takes nothing.
    """
    dist = {(0, f0): 1.0}
    for _ in range(n):
        new: dict = {}
        for (fails, f), pr in dist.items():
            for q, size, flo in items:
                key = (fails, f - size) if f - size >= flo else (fails + 1, f)
                new[key] = new.get(key, 0.0) + pr * q
        dist = new
    fails_pmf: dict[int, float] = {}
    f_pmf: dict[int, float] = {}
    for (fails, f), pr in dist.items():
        fails_pmf[fails] = fails_pmf.get(fails, 0.0) + pr
        f_pmf[f] = f_pmf.get(f, 0.0) + pr
    return fails_pmf, f_pmf


def test_alloc_oom_sequential_fit_exact():
    # alloc_oom, W = 32, F(0) = 30 < W: a kernel request fails its own WMARK_MIN try and passes
    # its ALLOC_OOM try iff F - 2**k >= 32 - 16 = 16; an atomic request passes its own try iff
    # F - 2**k >= 12 (min = 32 - 16 - 4), else it fails (its ALLOC_OOM retry is stricter, and it
    # may not reclaim). A kernel request that fails keeps failing (nothing is freed: holds and
    # gaps are huge), then fails at the victim exit. So failures and min_free follow the exact
    # sequential-fit pmf; chi-square goodness of fit with n = 1500, p > 1e-4.
    orders = [0.6, 0.25, 0.1, 0.05]
    classes = {"kernel": 0.7, "atomic": 0.3}
    p = _all_at_zero(10, fixed(30 / 32), orders, classes, exit_gap_us=fixed(1e9), horizon_us=50000.0,
                     reclaim_rounds=2)
    items = []
    for k, pk in enumerate(orders):
        items.append((0.7 * pk, 2**k, 16))
        items.append((0.3 * pk, 2**k, 12))
    fails_pmf, f_pmf = _sequential_fit_pmf(10, 30, items)
    r = ref.simulate_reference(p, "alloc_oom", 1500, seed=5, diagnostics=True)
    assert np.all(r["F0"] == 30)
    assert np.all(r["exhausted"] == 0)
    assert gof_pvalue(r["victim_failures"], fails_pmf) > 1e-4
    assert gof_pvalue(r["min_free"], f_pmf) > 1e-4
    used = r["diag.min_grant_F"] >= 0
    assert used.any() and np.all(r["diag.min_grant_F"][used] >= 16)


@pytest.mark.parametrize(
    "policy, f0, fails, min_free, full",
    [
        ("alloc_oom", 29, 3, 16, 0),  # floor W - W//2 = 16: 13 requests fit
        ("v6", 29, 3, 16, 0),
        ("fraction:0.25", 29, 11, 24, 0),  # floor 32 - 8 = 24: 5 fit
        ("fraction:1.0", 29, 0, 13, 0),
        ("fraction:0.0", 29, 16, 29, 0),  # the grant adds nothing: every kernel request fails
        ("tif_memdie_all", 29, 0, 13, 16),
        # tif_memdie: only thread 0 has TIF_MEMDIE; every other thread reaches the OOM killer,
        # gets TIF_MEMDIE from the dying-task shortcut, and then succeeds with NO_WATERMARKS
        ("tif_memdie", 29, 0, 13, 16),
        ("nommu", 29, 0, 13, 16),
    ],
)
def test_order0_kernel_deterministic(policy, f0, fails, min_free, full):
    p = _all_at_zero(16, fixed(f0 / 32), [1.0], {"kernel": 1.0}, exit_gap_us=fixed(1e9),
                     horizon_us=1_000_000.0)
    r = ref.simulate_reference(p, policy, 20, seed=3, diagnostics=True)
    assert np.all(r["F0"] == f0)
    assert np.all(r["victim_failures"] == fails)
    assert np.all(r["min_free"] == min_free)
    assert np.all(r["full_reserve_threads"] == full)
    assert np.all(r["victim_requests"] == 16)
    assert np.all(r["exhausted"] == 0)
    assert np.all(r["stalled"] == 1)  # nobody exits before the horizon
    assert np.all(r["resolve_us"] == 1_000_000.0)


# ---------------------------------------------------------------------------
# Deterministic timelines


def _corner(policy: str, reaper: bool, cls: str = "kernel", **kw) -> dict:
    # W = 32, F(0) = 17; two threads in the allocator at t = 0, one order-0 request each.
    base = dict(
        exit_gap_us=fixed(1e9), horizon_us=20000.0,
        reclaim_rounds=4, reclaim_round_us=fixed(1000.0), oom_lock_hold_us=50.0, jiffy_us=4000.0,
        reaper=reaper, reaper_delay_us=fixed(10.0), reaper_lock_p=1.0, anon_fraction=0.0, rss_pages=100,
    )
    base.update(kw)
    p = _all_at_zero(2, fixed(17 / 32), [1.0], {cls: 1.0}, **base)
    return ref.simulate_reference(p, policy, 3, seed=0)


def test_corner_tif_memdie_after_oom_skip_loops_and_rekills():
    # The reaper (t = 10) finds nothing reapable: MMF_OOM_SKIP at once. Thread 0 (TIF_MEMDIE)
    # takes a page with NO_WATERMARKS; thread 1 has no grant, and its OOM passes at t = 4000,
    # 8050, 12100, 16150 each count a would-be kill and return; it loops until the horizon.
    r = _corner("tif_memdie", reaper=True)
    assert list(r["oom_rekills"]) == [4, 4, 4]
    assert list(r["victim_failures"]) == [0, 0, 0]
    assert list(r["max_stall_us"]) == [20000.0] * 3
    assert list(r["full_reserve_threads"]) == [1, 1, 1]
    assert list(r["min_free"]) == [16] * 3
    assert list(r["stalled"]) == [1, 1, 1]


def test_corner_nofs_does_not_rekill():
    r = _corner("tif_memdie", reaper=True, cls="nofs")
    assert list(r["oom_rekills"]) == [0, 0, 0]
    assert list(r["max_stall_us"]) == [20000.0] * 3


def test_corner_alloc_oom_fails_instead():
    # Thread 0's ALLOC_OOM try leaves F = 16 = W - W//2; thread 1's fails, and after its OOM pass
    # at t = 4000 (one would-be kill, the mm is MMF_OOM_SKIP) the victim exit fails it at 4050.
    r = _corner("alloc_oom", reaper=True)
    assert list(r["oom_rekills"]) == [1, 1, 1]
    assert list(r["victim_failures"]) == [1, 1, 1]
    assert list(r["max_stall_us"]) == [4050.0] * 3
    assert list(r["full_reserve_threads"]) == [0, 0, 0]


@pytest.mark.parametrize("policy", ["tif_memdie", "nommu"])
def test_corner_without_skip_the_shortcut_grants(policy):
    # No reaper, so no MMF_OOM_SKIP: thread 1's first OOM pass (t = 4000) marks it, and its
    # retry at 4050 succeeds with NO_WATERMARKS.
    r = _corner(policy, reaper=False)
    assert list(r["oom_rekills"]) == [0, 0, 0]
    assert list(r["victim_failures"]) == [0, 0, 0]
    assert list(r["max_stall_us"]) == [4050.0] * 3
    assert list(r["full_reserve_threads"]) == [2, 2, 2]
    assert list(r["min_free"]) == [15] * 3


@pytest.mark.parametrize("round_us, rekills, stall, full", [(600.0, 0, 2450.0, 2), (800.0, 6, 20000.0, 1)])
def test_reaper_gives_up_after_its_last_sleep(round_us, rekills, stall, full):
    # reaper_lock_p = 0, 3 attempts at t = 10, 1010, 2010, each followed by a 1000 us sleep (as
    # oom_reap_task does), so MMF_OOM_SKIP comes at 3010. Thread 1's first OOM pass is at
    # 4 * round_us: at 2400 the dying-task shortcut still marks it; at 3200 it is too late, and it
    # loops (passes at 3200 + 3250 i < 20000: 6 would-be kills).
    r = _corner("tif_memdie", reaper=True, reaper_lock_p=0.0, reaper_retries=3, reaper_retry_us=1000.0,
                reclaim_round_us=fixed(round_us))
    assert list(r["reaper_gave_up"]) == [1, 1, 1]
    assert list(r["oom_rekills"]) == [rekills] * 3
    assert list(r["max_stall_us"]) == [stall] * 3
    assert list(r["full_reserve_threads"]) == [full] * 3


def test_rekills_wait_until_every_victim_mm_is_skipped():
    # Two victims (group kill), two threads each; thread 0 of each has TIF_MEMDIE and takes a page
    # at t = 0 (F: 17 -> 15). The reaper fails its single attempt on mm 0 at t = 10, sleeps 5000,
    # gives up (MMF_OOM_SKIP at 5010), fails on mm 1 at 5010 and gives up at 10010. Thread 1 of
    # victim 0 passes the OOM killer at 6000 (own mm skipped, mm 1 not: the scan aborts, no
    # re-kill), 12050 and 18100 (re-kills); thread 1 of victim 1 finds the lock held at 6000,
    # sleeps to 10000, and passes at 16000 (re-kill). 3 re-kills, not 4.
    base = dict(
        exit_gap_us=fixed(1e9), horizon_us=20000.0, victims=2,
        reclaim_rounds=4, reclaim_round_us=fixed(1500.0), oom_lock_hold_us=50.0, jiffy_us=4000.0,
        reaper=True, reaper_delay_us=fixed(10.0), reaper_lock_p=0.0, reaper_retries=1, reaper_retry_us=5000.0,
        rss_pages=100,
    )
    p = _all_at_zero(2, fixed(17 / 32), [1.0], {"kernel": 1.0}, **base)
    r = ref.simulate_reference(p, "tif_memdie", 3, seed=0)
    assert list(r["oom_rekills"]) == [3, 3, 3]
    assert list(r["reaper_gave_up"]) == [1, 1, 1]
    assert list(r["min_free"]) == [15, 15, 15]
    assert list(r["full_reserve_threads"]) == [2, 2, 2]
    assert list(r["max_stall_us"]) == [20000.0] * 3


def test_nommu_ignores_the_reaper():
    r = _corner("nommu", reaper=True)
    assert list(r["oom_rekills"]) == [0, 0, 0]
    assert list(r["max_stall_us"]) == [4050.0] * 3


@pytest.mark.parametrize(
    "policy, reaper, resolve",
    [
        # exit at 15; teardown frees the 500 other pages at 10/us by 65 while the reaper (from
        # t = 1, 5/us) has reaped 320 of the 500 reapable; the last 180 go at 15/us: t = 77.
        ("alloc_oom", True, 77.0),
        ("tif_memdie", True, 77.0),
        ("alloc_oom", False, 115.0),  # teardown alone: 15 + 1000 / 10
        ("nommu", True, 115.0),  # no reaper on !MMU
        ("v6", True, 115.0),  # the v6 reaper starts at 2,000,001
    ],
)
def test_resolve_with_concurrent_teardown_and_reaper(policy, reaper, resolve):
    p = params(
        min_free_kbytes=128, f0_frac=fixed(0.5), threads=1, in_allocator_frac=0.0, exit_allocs=fixed(0),
        wake_us=fixed(10.0), exit_gap_us=fixed(5.0), rss_pages=1000, anon_fraction=0.5,
        teardown_pages_per_us=10.0, reaper=reaper, reaper_delay_us=fixed(1.0), reaper_lock_p=1.0,
        reap_pages_per_us=5.0, stack_pages=4, **NO_BYSTANDERS,
    )
    r = ref.simulate_reference(p, policy, 2, seed=0, diagnostics=True)
    assert np.allclose(r["resolve_us"], resolve, rtol=0, atol=1e-9)
    assert np.all(r["diag.F_end"] == 16 + 1000 + 4)
    assert np.all(r["stalled"] == 0) and np.all(r["victim_requests"] == 0)
    assert np.all(r["max_stall_us"] == 0.0)


# ---------------------------------------------------------------------------
# Exact probabilities and means


@pytest.mark.parametrize("victims", [1, 2])
def test_reaper_give_up_probability(victims):
    # Nothing competes for oom_lock (F(0) = 4W: every request passes at once) and the mms are
    # never torn down (teardown 0), so the reaper makes its attempts on each mm until success or
    # 3 failures: P(give up on one mm) = 0.5**3, on any of v mms 1 - (1 - 0.125)**v. n = 1500,
    # Wilson interval at z = 4.5.
    p = params(
        min_free_kbytes=128, f0_frac=fixed(4.0), victims=victims, threads=2, rss_pages=100,
        teardown_pages_per_us=0.0, reaper_lock_p=0.5, reaper_retries=3, reaper_retry_us=1000.0,
        horizon_us=20000.0, **NO_BYSTANDERS,
    )
    n = 1500
    r = ref.simulate_reference(p, "alloc_oom", n, seed=21)
    exact = 1 - (1 - 0.125) ** victims
    lo, hi = wilson(int(r["reaper_gave_up"].sum()), n)
    assert lo <= exact <= hi, (exact, lo, hi)
    assert np.all(r["resolve_us"] == 20000.0)


def test_victim_requests_mean():
    # Each thread makes Poisson(2) requests, at least 1 if it is mid-request at t = 0
    # (probability 0.5). Everything succeeds (F(0) = 4W), so every request is started.
    # Mean of the total over 4 threads, n = 1000, |error| < 4.5 standard errors.
    lam, p_in, nthr, n = 2.0, 0.5, 4, 1000
    p = params(min_free_kbytes=128, f0_frac=fixed(4.0), threads=nthr, in_allocator_frac=p_in,
               exit_allocs=lam, rss_pages=10, **NO_BYSTANDERS)
    r = ref.simulate_reference(p, "alloc_oom", n, seed=8)
    ks = np.arange(60)
    pois = stats.poisson.pmf(ks, lam)
    pmf = (1 - p_in) * pois
    pmf[1] += p_in * (pois[0] + pois[1])
    pmf[2:] += p_in * pois[2:]
    mean = float((ks * pmf).sum())
    var = float((ks**2 * pmf).sum()) - mean**2
    se = math.sqrt(nthr * var / n)
    assert abs(r["victim_requests"].mean() - nthr * mean) < Z * se
    assert np.all(r["victim_failures"] == 0) and np.all(r["stalled"] == 0)


def test_kernel_bystanders_all_fail_below_min():
    # F stays at F(0) = 24 < W = 32 (no victim requests, no stacks, mm kept: the episode runs to
    # the horizon of 10 ms), so every kernel bystander fails: Poisson(2/ms * 10 ms) failures.
    # Mean over n = 500 within 4.5 standard errors; variance ratio within a wide band.
    p = params(min_free_kbytes=128, f0_frac=fixed(0.75), threads=1, exit_allocs=fixed(0), stack_pages=0,
               in_allocator_frac=0.0, teardown_pages_per_us=0.0, reaper=False, horizon_us=10000.0,
               **{**NO_BYSTANDERS, "bystanders.kernel.rate_per_ms": 2.0})
    n = 500
    r = ref.simulate_reference(p, "tif_memdie", n, seed=4)
    x = r["bystander_failures.kernel"]
    assert abs(x.mean() - 20.0) < Z * math.sqrt(20.0 / n)
    assert 0.6 < x.var() / 20.0 < 1.5
    assert np.all(r["min_free"] == 24)


def test_rounding_half_up_and_empty_mm():
    # F(0) = round(f0_frac * W) and integer parameters round halves up: 16.5 -> 17, 2.5 -> 3.
    p = params(min_free_kbytes=128, f0_frac=fixed(16.5 / 32), threads=2.5, exit_allocs=fixed(1.5),
               in_allocator_frac=0.0, rss_pages=100, horizon_us=1e6, **NO_BYSTANDERS)
    r = ref.simulate_reference(p, "alloc_oom", 2, seed=0)
    assert list(r["F0"]) == [17, 17] and list(r["n_threads"]) == [3, 3] and list(r["victim_requests"]) == [6, 6]
    # an mm with rss 0 is not MMF_OOM_SKIP before its teardown or the reaper: the shortcut still grants
    r = _corner("tif_memdie", reaper=False, rss_pages=0)
    assert list(r["oom_rekills"]) == [0, 0, 0] and list(r["full_reserve_threads"]) == [2, 2, 2]
    r = _corner("tif_memdie", reaper=True, rss_pages=0)
    assert list(r["oom_rekills"]) == [4, 4, 4] and list(r["full_reserve_threads"]) == [1, 1, 1]


def test_exhaustion_floor_counts_f0():
    p = params(min_free_kbytes=128, f0_frac=fixed(0.75), exhaustion_floor=24, threads=1, rss_pages=10,
               **NO_BYSTANDERS)
    r = ref.simulate_reference(p, "alloc_oom", 5, seed=0)
    assert np.all(r["exhausted"] == 1)
    p = params(min_free_kbytes=128, f0_frac=fixed(0.75), exhaustion_floor=23, threads=1, rss_pages=10,
               exit_allocs=fixed(0), in_allocator_frac=0.0, **NO_BYSTANDERS)
    r = ref.simulate_reference(p, "alloc_oom", 5, seed=0)
    assert np.all(r["exhausted"] == 0)


def test_costly_orders_fail_after_one_reclaim_round():
    # Order 4 never reaches the OOM killer: one reclaim round and its try, then failure (even for
    # a victim with a NO_WATERMARKS grant that does not fit: F(0) = 10 < 16 pages).
    p = _all_at_zero(1, fixed(10 / 32), [0, 0, 0, 0, 1.0], {"kernel": 1.0}, exit_gap_us=fixed(1e9),
                     horizon_us=10000.0, reclaim_round_us=fixed(300.0))
    r = ref.simulate_reference(p, "tif_memdie", 3, seed=0)
    assert list(r["victim_failures"]) == [1, 1, 1]
    assert list(r["max_stall_us"]) == [300.0] * 3
    assert list(r["exhausted"]) == [1, 1, 1]  # the NO_WATERMARKS try found too few pages
    p2 = _all_at_zero(1, fixed(10 / 32), [0, 0, 0, 0, 1.0], {"kernel": 1.0}, exit_gap_us=fixed(1e9),
                      horizon_us=10000.0, reclaim_rounds=0)
    r2 = ref.simulate_reference(p2, "alloc_oom", 3, seed=0)
    assert list(r2["victim_failures"]) == [1, 1, 1] and list(r2["max_stall_us"]) == [0.0] * 3
    # the try at the end of the reclaim round (as __alloc_pages_direct_reclaim) can succeed
    p3 = _all_at_zero(1, fixed(10 / 32), [0, 0, 0, 0, 1.0], {"kernel": 1.0}, exit_gap_us=fixed(1e9),
                      horizon_us=10000.0, reclaim_round_us=fixed(300.0), reclaim_yield_pages=100)
    r3 = ref.simulate_reference(p3, "alloc_oom", 3, seed=0)
    assert list(r3["victim_failures"]) == [0, 0, 0] and list(r3["max_stall_us"]) == [300.0] * 3
    assert list(r3["min_free"]) == [10, 10, 10]


# ---------------------------------------------------------------------------
# Invariants on busy scenarios


def _busy(**kw) -> dict:
    base = dict(
        min_free_kbytes=256, threads={"dist": "geometric", "mean": 4}, mm_sharers=1, victims=2,
        in_allocator_frac=0.5, exit_allocs=3.0, rss_pages=400, reaper_lock_p=0.5, reaper_retry_us=3000.0,
        reclaim_yield_pages=1, horizon_us=60000.0,
        class_probs={"kernel": 0.4, "nofs": 0.2, "atomic": 0.15, "high": 0.1, "nomemalloc": 0.05,
                     "memalloc": 0.05, "nofail": 0.05},
        order_probs=[0.7, 0.15, 0.1, 0.04, 0.01],
        **{"bystanders.atomic.rate_per_ms": 3.0, "bystanders.kernel.rate_per_ms": 1.0,
           "bystanders.memalloc.rate_per_ms": 0.5, "bystanders.high.rate_per_ms": 0.5},
    )
    base.update(kw)
    return params(**base)


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_conservation_and_bounds_busy(policy):
    # simulate_reference runs check_conservation on every episode; also check the outputs.
    p = _busy()
    r = ref.simulate_reference(p, policy, 120, seed=2, diagnostics=True)
    assert np.all(r["diag.F_end"] == r["F0"] - r["diag.allocated"] + r["diag.freed"])
    assert np.all(r["min_free"] >= 0) and np.all(r["min_free"] <= r["F0"])
    assert np.all(r["max_stall_us"] <= p["horizon_us"]) and np.all(r["resolve_us"] <= p["horizon_us"])
    assert np.all(r["stalled"][r["resolve_us"] == p["horizon_us"]] == 1)
    assert np.all(r["victim_failures"] <= r["victim_requests"])
    if policy in ("alloc_oom", "v6", "fraction:0.25"):
        assert np.all(r["full_reserve_threads"] == 0)
    else:
        assert np.all(r["full_reserve_threads"] >= 1)
        assert np.all(r["full_reserve_threads"] <= r["n_threads"])


@pytest.mark.parametrize("policy", ["alloc_oom", "v6", "fraction:0.25", "fraction:0.8"])
def test_partial_grant_never_below_floor(policy):
    # A victim allocation made with its ALLOC_OOM (or fraction) grant never leaves F below
    # W - W//2 (W - floor(X * W)); F is kept under W by F(0) <= W and few frees.
    p = _busy(f0_frac={"dist": "uniform", "low": 0.6, "high": 1.0}, exit_gap_us=20.0,
              class_probs={"kernel": 0.6, "nofs": 0.3, "atomic": 0.1})
    r = ref.simulate_reference(p, policy, 150, seed=9, diagnostics=True)
    floor = r["diag.grant_floor"][0]
    w = r["W"][0]
    pol = ref.parse_policy(policy)
    assert floor == (w - w // 2 if pol.grant == ref.OOM else w - math.floor(pol.frac * w))
    used = r["diag.min_grant_F"] >= 0
    assert used.sum() > 20  # not vacuous
    assert np.all(r["diag.min_grant_F"][used] >= floor)
    assert r["diag.min_grant_F"][used].min() <= floor + 2  # and the floor is actually approached


def test_check_conservation_detects_violations():
    good = dict(F0=10, F_end=12, allocated=5, freed=7, freed_by_source={"exit": 7}, min_F=3,
                mm_rss=[10], mm_freed=[4], thread_alloc=[5], thread_freed=[3], stack_pages=4)
    ref.check_conservation(good)
    for bad in (dict(F_end=13), dict(freed_by_source={"exit": 6}), dict(min_F=-1), dict(mm_freed=[11]),
                dict(thread_freed=[10])):
        with pytest.raises(AssertionError):
            ref.check_conservation({**good, **bad})


def test_seed_reproducible():
    p = _busy()
    a = ref.simulate_reference(p, "tif_memdie", 20, seed=7)
    b = ref.simulate_reference(p, "tif_memdie", 20, seed=7)
    for k in a:
        assert np.array_equal(a[k], b[k])
