"""Table tests of the kernel rules in ``depletion/semantics.py``.

Every expected value below is written out as a number, computed by hand from
the kernel formula quoted next to the table; nothing here calls the function
under test to produce an expectation.

Kernel sources (read through the public-code search index; the index ids let a
reader find the exact text again):

[SEED]  /work/shared/seed/000_aa1c476228024615.txt -- review of "mm, oom: do
        not rely on TIF_MEMDIE for memory reserves access" v2 (Aug 2017), a
        diff against the pre-4.14 mm tree. Its "-" lines are the v4.13 code,
        its "+" lines the v4.14 code (mm/page_alloc.c, mm/internal.h).
[PA4]   mm/page_alloc.c, v4.1x text (index id 4679146434; still has
        buffered_rmqueue and __GFP_REPEAT, i.e. v4.11/v4.12): gfp_to_alloc_flags,
        gfp_pfmemalloc_allowed, zone_watermark_fast, __alloc_pages_may_oom,
        __alloc_pages_slowpath, __setup_per_zone_wmarks, init_per_zone_wmark_min.
        To our reading these functions are textually the same in v4.13/v4.14
        except for the hunks quoted from [SEED] (and __GFP_RETRY_MAYFAIL, 4.13).
[OOM13] mm/oom_kill.c, v4.13 (index id 1836907; the pre-image of [SEED]'s
        oom_kill.c hunks): __oom_reap_task_mm, oom_reap_task, mark_oom_victim,
        task_will_free_mem, out_of_memory.
[OOM14] "mm, oom_reaper: skip mm structs with mmu notifiers", M. Hocko,
        posted 2017-09-13 during the v4.14 cycle (index id 11431291377): its
        context is v4.14's __oom_reap_task_mm, which still runs "under the
        oom_lock" (the lock stays in the reaper until after v4.18, index id
        30263732379).
[PA6]   mm/page_alloc.c, v6.6-era (6.4..6.6: ``o <= MAX_ORDER`` loop,
        ``pcp->free_factor``; index id 77603225): __zone_watermark_unusable_free,
        __zone_watermark_ok, zone_watermark_fast, gfp_to_alloc_flags,
        __gfp_pfmemalloc_flags, __alloc_pages_may_oom, __alloc_pages_slowpath,
        __setup_per_zone_wmarks, calculate_min_free_kbytes.
[IH6]   mm/internal.h, v6 (index id 21741439): ALLOC_NON_BLOCK, ALLOC_MIN_RESERVE,
        ALLOC_RESERVES.
[OOM6]  mm/oom_kill.c, v5.x/v6 (index ids 15386994458, 59307310):
        oom_reap_task_mm (mmap_read_trylock, no oom_lock), queue_oom_reaper,
        OOM_REAPER_DELAY.
"""

from __future__ import annotations

import numpy as np
import pytest

from depletion import semantics as s
from depletion.engine import watermark_ok as watermark_ok_jit
from depletion.semantics import (
    ALLOC_HARDER,
    ALLOC_HIGH,
    ALLOC_HIGHATOMIC,
    ALLOC_MIN_RESERVE,
    ALLOC_NO_WATERMARKS,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_WMARK_MIN,
    ERA_V4_13,
    ERA_V4_14,
    ERA_V6,
)

MIN = ALLOC_WMARK_MIN
HIGH = ALLOC_HIGH
HIGH_HARDER = ALLOC_HIGH | ALLOC_HARDER
OOM = ALLOC_OOM
NOWM = ALLOC_NO_WATERMARKS
MINRES = ALLOC_MIN_RESERVE
MINRES_NB = ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK
MINRES_NB_HA = ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK | ALLOC_HIGHATOMIC

# The jitted kernel and its plain-Python body must agree on every row.
IMPLS = [
    pytest.param(watermark_ok_jit, id="jit"),
    pytest.param(s.watermark_ok, id="py"),
]

KERNEL_HALF = -1.0  # oom_frac < 0: the kernel's "min -= min / 2"


# ---------------------------------------------------------------------------
# watermark_ok: the threshold table
#
# Common to every era (the order-0 part of __zone_watermark_ok):
#   "free_pages -= (1 << order) - 1;"  (v6: via __zone_watermark_unusable_free)
#   "if (free_pages <= min + z->lowmem_reserve[classzone_idx]) return false;"
# With one zone lowmem_reserve is 0, so the request passes iff
#   F - (2**k - 1) - Hsub > m   <=>   F >= m + 2**k + Hsub,
# where m is the reduced min and Hsub is nr_reserved_highatomic when it is
# subtracted, else 0. Each row gives F_MIN = the smallest F that passes; the
# test checks F_MIN passes and F_MIN - 1 fails.
#
# v4.13 ([SEED] "-" lines, [PA4] __zone_watermark_ok):
#   "const bool alloc_harder = (alloc_flags & ALLOC_HARDER);"
#   "if (alloc_flags & ALLOC_HIGH) min -= min / 2;"
#   "if (likely(!alloc_harder)) free_pages -= z->nr_reserved_highatomic;
#    else min -= min / 4;"
#   (no ALLOC_OOM in v4.13: the model's OOM bit is ignored, so it is WMARK_MIN)
# v4.14 ([SEED] "+" lines):
#   "const bool alloc_harder = (alloc_flags & (ALLOC_HARDER|ALLOC_OOM));"
#   "if (likely(!alloc_harder)) { free_pages -= z->nr_reserved_highatomic; }
#    else { if (alloc_flags & ALLOC_OOM) min -= min / 2; else min -= min / 4; }"
# v6 ([PA6] __zone_watermark_unusable_free / __zone_watermark_ok, [IH6]):
#   "if (likely(!(alloc_flags & ALLOC_RESERVES)))
#        unusable_free += z->nr_reserved_highatomic;"
#   "if (unlikely(alloc_flags & ALLOC_RESERVES)) {
#        if (alloc_flags & ALLOC_MIN_RESERVE) { min -= min / 2;
#            if (alloc_flags & ALLOC_NON_BLOCK) min -= min / 4; }
#        if (alloc_flags & ALLOC_OOM) min -= min / 2; }"
#   "#define ALLOC_RESERVES (ALLOC_NON_BLOCK|ALLOC_MIN_RESERVE|ALLOC_HIGHATOMIC|ALLOC_OOM)"
# NO_WATERMARKS (get_page_from_freelist, [PA4] and [PA6]):
#   "if (alloc_flags & ALLOC_NO_WATERMARKS) goto try_this_zone;"
#   -> no watermark at all: passes iff a 2**k block is free, F >= 2**k.
# Caveat (v4.13/v4.14 only, order 0): zone_watermark_fast ([PA4]) first accepts
#   "if (!order && (free_pages - cma_pages) > mark + z->lowmem_reserve[classzone_idx]) return true;"
# i.e. without the highatomic term ("There is a corner case where the check passes but only the
# high-order atomic reserve are free"): the kernel wins over MODEL.md here, so for v4.x order 0
# a request also passes when F > W (= mark) and F > H (some non-highatomic page is free, so the
# free-list search succeeds); the order-0 entries of the v4.x "MIN, H" rows below are 1002, not 1039. v6's
# zone_watermark_fast subtracts __zone_watermark_unusable_free for order 0 as well ([PA6]).
#
# W = 1001 (odd, so every "/" truncates), H = nr_reserved_highatomic = 37:
#   WMARK_MIN               m = 1001                          Hsub = H
#   HIGH                    m = 1001 - 1001/2 = 1001 - 500 = 501      Hsub = H (HIGH is not alloc_harder)
#   HIGH|HARDER             m = 501 - 501/4 = 501 - 125 = 376         Hsub = 0
#   OOM (v4.14, v6)         m = 1001 - 500 = 501                      Hsub = 0
#   MIN_RESERVE (v6)        m = 501                                   Hsub = 0 (in ALLOC_RESERVES)
#   MIN_RESERVE|NON_BLOCK   m = 501 - 125 = 376                       Hsub = 0
#   ...|HIGHATOMIC          m = 376 (HIGHATOMIC does not lower min)   Hsub = 0
# F_MIN = m + 2**k + Hsub for k = 0, 1, 2, 3 (2**k = 1, 2, 4, 8).
# ---------------------------------------------------------------------------
W = 1001
H = 37

# (era, flags, highatomic, (F_MIN for order 0, 1, 2, 3))
THRESHOLDS = [
    # --- v4.13 ---
    (ERA_V4_13, MIN, 0, (1002, 1003, 1005, 1009)),  # 1001 + 2**k
    (ERA_V4_13, MIN, H, (1002, 1040, 1042, 1046)),  # order 0: fast path F > 1001; else 1001 + 2**k + 37
    (ERA_V4_13, HIGH, 0, (502, 503, 505, 509)),  # 501 + 2**k
    (ERA_V4_13, HIGH, H, (539, 540, 542, 546)),  # 501 + 2**k + 37
    (ERA_V4_13, HIGH_HARDER, 0, (377, 378, 380, 384)),  # 376 + 2**k
    (ERA_V4_13, HIGH_HARDER, H, (377, 378, 380, 384)),  # alloc_harder: no highatomic term
    (ERA_V4_13, OOM, 0, (1002, 1003, 1005, 1009)),  # no ALLOC_OOM before 4.14: as WMARK_MIN
    (ERA_V4_13, OOM, H, (1002, 1040, 1042, 1046)),  # ... including the highatomic term (and fast path)
    (ERA_V4_13, NOWM, 0, (1, 2, 4, 8)),  # 2**k
    (ERA_V4_13, NOWM, H, (1, 2, 4, 8)),
    # --- v4.14 ---
    (ERA_V4_14, MIN, 0, (1002, 1003, 1005, 1009)),
    (ERA_V4_14, MIN, H, (1002, 1040, 1042, 1046)),  # order 0: zone_watermark_fast
    (ERA_V4_14, HIGH, 0, (502, 503, 505, 509)),
    (ERA_V4_14, HIGH, H, (539, 540, 542, 546)),
    (ERA_V4_14, HIGH_HARDER, 0, (377, 378, 380, 384)),
    (ERA_V4_14, HIGH_HARDER, H, (377, 378, 380, 384)),
    (ERA_V4_14, OOM, 0, (502, 503, 505, 509)),  # 501 + 2**k
    (ERA_V4_14, OOM, H, (502, 503, 505, 509)),  # ALLOC_OOM counts as alloc_harder: no highatomic term
    (ERA_V4_14, NOWM, 0, (1, 2, 4, 8)),
    (ERA_V4_14, NOWM, H, (1, 2, 4, 8)),
    # --- v6 ---
    (ERA_V6, MIN, 0, (1002, 1003, 1005, 1009)),
    (ERA_V6, MIN, H, (1039, 1040, 1042, 1046)),
    (ERA_V6, MINRES, 0, (502, 503, 505, 509)),
    (ERA_V6, MINRES, H, (502, 503, 505, 509)),  # MIN_RESERVE is in ALLOC_RESERVES: no highatomic term
    (ERA_V6, MINRES_NB, 0, (377, 378, 380, 384)),
    (ERA_V6, MINRES_NB, H, (377, 378, 380, 384)),
    (ERA_V6, MINRES_NB_HA, 0, (377, 378, 380, 384)),
    (ERA_V6, MINRES_NB_HA, H, (377, 378, 380, 384)),
    (ERA_V6, OOM, 0, (502, 503, 505, 509)),
    (ERA_V6, OOM, H, (502, 503, 505, 509)),
    (ERA_V6, NOWM, 0, (1, 2, 4, 8)),
    (ERA_V6, NOWM, H, (1, 2, 4, 8)),
]

THRESHOLD_CASES = [
    pytest.param(era, flags, ha, f_mins, id=f"era{era}-flags{flags}-ha{ha}") for era, flags, ha, f_mins in THRESHOLDS
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("era", "flags", "highatomic", "f_mins"), THRESHOLD_CASES)
def test_watermark_threshold(impl, era, flags, highatomic, f_mins):
    for order, f_min in enumerate(f_mins):
        assert impl(f_min, order, W, flags, era, highatomic, KERNEL_HALF), order
        assert not impl(f_min - 1, order, W, flags, era, highatomic, KERNEL_HALF), order
        assert impl(f_min + 1, order, W, flags, era, highatomic, KERNEL_HALF), order


# Spot rows at the default 16 GiB watermark W = 4096 (min_free_kbytes 16384 / 4):
#   WMARK_MIN       m = 4096                          F_MIN(k=0) = 4097
#   HIGH|HARDER     m = 4096 - 2048 = 2048; 2048 - 512 = 1536   -> 1537 (about 3/8 W, every era)
#   MIN_RESERVE|NON_BLOCK (v6) likewise 1536          -> 1537
#   OOM             m = 4096 - 2048 = 2048            -> 2049 (half of min)
# and a tiny odd W = 7: HIGH 7 - 3 = 4; HIGH|HARDER 4 - 1 = 3; OOM 7 - 3 = 4.
SPOT = [
    # (era, flags, W, order, F_MIN)
    (ERA_V4_13, MIN, 4096, 0, 4097),
    (ERA_V4_13, HIGH_HARDER, 4096, 0, 1537),
    (ERA_V4_14, HIGH_HARDER, 4096, 0, 1537),
    (ERA_V6, MINRES_NB, 4096, 0, 1537),
    (ERA_V4_14, OOM, 4096, 0, 2049),
    (ERA_V6, OOM, 4096, 0, 2049),
    (ERA_V4_14, OOM, 4096, 3, 2056),  # 2048 + 8
    (ERA_V4_14, HIGH, 7, 0, 5),  # 4 + 1
    (ERA_V4_14, HIGH_HARDER, 7, 0, 4),  # 3 + 1
    (ERA_V4_14, OOM, 7, 0, 5),  # 4 + 1
    (ERA_V6, MINRES_NB, 7, 0, 4),  # 7 - 3 = 4; 4 - 1 = 3; + 1
    # v4.14 if/else: "if (alloc_flags & ALLOC_OOM) min -= min / 2; else min -= min / 4;"
    # HARDER|OOM (never produced by the model, a grant replaces flags) takes the OOM branch only:
    (ERA_V4_14, ALLOC_HARDER | OOM, 1001, 0, 502),
    # v4.14: ALLOC_HIGH is applied before the alloc_harder branch (HIGH|OOM: 1001 -> 501 -> 251):
    (ERA_V4_14, HIGH | OOM, 1001, 0, 252),
    # v6: the OOM cut comes after the MIN_RESERVE cuts (1001 -> 501 -> 376 -> 188):
    (ERA_V6, MINRES_NB | OOM, 1001, 0, 189),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("era", "flags", "wmin", "order", "f_min"), SPOT)
def test_watermark_spot(impl, era, flags, wmin, order, f_min):
    assert impl(f_min, order, wmin, flags, era, 0, KERNEL_HALF)
    assert not impl(f_min - 1, order, wmin, flags, era, 0, KERNEL_HALF)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("era", [ERA_V4_13, ERA_V4_14, ERA_V6])
def test_no_watermarks_needs_a_whole_block(impl, era):
    # try_this_zone -> rmqueue needs a free 2**k block; nothing else is checked.
    for order in range(4):
        size = 1 << order
        assert not impl(size - 1, order, 4096, NOWM, era, 0, KERNEL_HALF)
        assert impl(size, order, 4096, NOWM, era, 0, KERNEL_HALF)
        assert impl(size, order, 4096, NOWM, era, 10_000, KERNEL_HALF)
    assert not impl(0, 0, 4096, NOWM, era, 0, KERNEL_HALF)


@pytest.mark.parametrize("impl", IMPLS)
def test_free_pages_may_go_negative(impl):
    # "/* free_pages may go negative - that's OK */": F below 2**k - 1 just fails.
    for era in (ERA_V4_13, ERA_V4_14, ERA_V6):
        for flags in (MIN, OOM):
            assert not impl(0, 3, 16, flags, era, 100, KERNEL_HALF)
            assert not impl(2, 3, 0, flags, era, 0, KERNEL_HALF)
    # With W = 0 and no highatomic: F - (2**k - 1) > 0 <=> F >= 2**k.
    assert impl(8, 3, 0, MIN, ERA_V4_14, 0, KERNEL_HALF)
    assert not impl(7, 3, 0, MIN, ERA_V4_14, 0, KERNEL_HALF)


# ---------------------------------------------------------------------------
# fraction:X (MODEL.md section 5, not a kernel rule): "min -= floor(X * min)",
# on the v4.14 arithmetic with ALLOC_OOM (so no highatomic term, as ALLOC_OOM is
# alloc_harder). F_MIN = m + 2**k.
#   W = 1001: X = 0     -> m = 1001                      -> 1002 (k=0)
#             X = 0.25  -> floor(250.25) = 250, m = 751  -> 752
#             X = 0.5   -> floor(500.5)  = 500, m = 501  -> 502 (= kernel min/2)
#             X = 0.75  -> floor(750.75) = 750, m = 251  -> 252
#             X = 1     -> m = 0                         -> 1, 2, 4, 8 for k = 0..3
#   W = 4096: X = 0.1   -> floor(409.6)  = 409, m = 3687 -> 3688
# ---------------------------------------------------------------------------
FRACTION = [
    # (X, W, order, highatomic, F_MIN)
    (0.0, 1001, 0, 0, 1002),
    (0.0, 1001, 0, H, 1002),
    (0.25, 1001, 0, 0, 752),
    (0.25, 1001, 2, H, 755),  # 751 + 4
    (0.5, 1001, 0, 0, 502),
    (0.75, 1001, 0, 0, 252),
    (0.75, 1001, 3, 0, 259),  # 251 + 8
    (1.0, 1001, 0, 0, 1),
    (1.0, 1001, 1, H, 2),
    (1.0, 1001, 3, 0, 8),
    (0.1, 4096, 0, 0, 3688),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("frac", "wmin", "order", "highatomic", "f_min"), FRACTION)
def test_fraction_threshold(impl, frac, wmin, order, highatomic, f_min):
    assert impl(f_min, order, wmin, OOM, ERA_V4_14, highatomic, frac)
    assert not impl(f_min - 1, order, wmin, OOM, ERA_V4_14, highatomic, frac)


@pytest.mark.parametrize("impl", IMPLS)
def test_fraction_only_affects_alloc_oom(impl):
    # X replaces the OOM cut only; HIGH|HARDER keeps 1001 -> 501 -> 376, WMARK_MIN keeps 1001.
    for frac in (0.0, 0.5, 1.0):
        assert impl(377, 0, W, HIGH_HARDER, ERA_V4_14, 0, frac)
        assert not impl(376, 0, W, HIGH_HARDER, ERA_V4_14, 0, frac)
        assert impl(1002, 0, W, MIN, ERA_V4_14, 0, frac)
        assert not impl(1001, 0, W, MIN, ERA_V4_14, 0, frac)


# ---------------------------------------------------------------------------
# class_flags: gfp_to_alloc_flags + __gfp_pfmemalloc_flags per era
#
# v4.13/v4.14 ([PA4] gfp_to_alloc_flags; unchanged by [SEED]):
#   "unsigned int alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET;"
#   "alloc_flags |= (__force int) (gfp_mask & __GFP_HIGH);"          -> ALLOC_HIGH
#   "if (gfp_mask & __GFP_ATOMIC) { if (!(gfp_mask & __GFP_NOMEMALLOC))
#        alloc_flags |= ALLOC_HARDER; ..."                            -> GFP_ATOMIC: HIGH|HARDER
#   GFP_KERNEL/GFP_NOFS/GFP_NOIO carry neither bit                    -> WMARK_MIN
# v6 ([PA6] gfp_to_alloc_flags):
#   "alloc_flags |= (__force int) (gfp_mask & (__GFP_HIGH | __GFP_KSWAPD_RECLAIM));"
#   "if (!(gfp_mask & __GFP_DIRECT_RECLAIM)) { if (!(gfp_mask & __GFP_NOMEMALLOC)) {
#        alloc_flags |= ALLOC_NON_BLOCK; if (order > 0) alloc_flags |= ALLOC_HIGHATOMIC; } ..."
#   GFP_ATOMIC (v6: __GFP_HIGH|__GFP_KSWAPD_RECLAIM)  -> MIN_RESERVE|NON_BLOCK (|HIGHATOMIC if k > 0)
#   GFP_KERNEL|__GFP_HIGH                             -> MIN_RESERVE
# PF_MEMALLOC ([PA4] gfp_pfmemalloc_allowed, [PA6] __gfp_pfmemalloc_flags):
#   "if (current->flags & PF_MEMALLOC) return ALLOC_NO_WATERMARKS;"
#   and the slow path replaces the flags: v4.13 "alloc_flags = ALLOC_NO_WATERMARKS;",
#   v6 "alloc_flags = gfp_to_alloc_flags_cma(gfp_mask, reserve_flags) | (alloc_flags & ALLOC_KSWAPD);"
# (ALLOC_CPUSET/ALLOC_CMA/ALLOC_KSWAPD have no model bit.)
# ---------------------------------------------------------------------------
V4_FLAGS = {
    "kernel": MIN,
    "nofs": MIN,
    "noio": MIN,
    "high": HIGH,
    "atomic": HIGH_HARDER,
    "nomemalloc": MIN,
    "memalloc": NOWM,
    "nofail": MIN,
}
V6_FLAGS_ORDER0 = {
    "kernel": MIN,
    "nofs": MIN,
    "noio": MIN,
    "high": MINRES,
    "atomic": MINRES_NB,
    "nomemalloc": MIN,
    "memalloc": NOWM,
    "nofail": MIN,
}
V6_FLAGS_ORDER_GT0 = dict(V6_FLAGS_ORDER0, atomic=MINRES_NB_HA)

# (era, {order: expected flags per class})
CLASS_FLAG_CASES = [
    (ERA_V4_13, {0: V4_FLAGS, 1: V4_FLAGS, 2: V4_FLAGS, 3: V4_FLAGS}),
    (ERA_V4_14, {0: V4_FLAGS, 1: V4_FLAGS, 2: V4_FLAGS, 3: V4_FLAGS}),
    (ERA_V6, {0: V6_FLAGS_ORDER0, 1: V6_FLAGS_ORDER_GT0, 2: V6_FLAGS_ORDER_GT0, 3: V6_FLAGS_ORDER_GT0}),
]


@pytest.mark.parametrize(("era", "by_order"), CLASS_FLAG_CASES)
def test_class_flags(era, by_order):
    for order, table in by_order.items():
        for cls, expected in table.items():
            assert s.class_flags(cls, era, order) == expected, (cls, order)


def test_class_flags_table_covers_every_class():
    assert set(V4_FLAGS) == set(s.CLASSES) == set(V6_FLAGS_ORDER0)


@pytest.mark.parametrize("bad", ["KERNEL", "gfp_atomic", "", "nowait"])
def test_class_flags_rejects_unknown_class(bad):
    with pytest.raises(ValueError, match="unknown class"):
        s.class_flags(bad, ERA_V4_14, 0)


# class x era, end to end with watermark_ok at W = 4096, order 0, no highatomic.
# atomic: "a GFP_ATOMIC request may go down to about 3/8 of W in every era" (MODEL.md 3):
#   4096 -> 2048 -> 1536, F_MIN = 1537 in v4.13, v4.14 and v6.
# high: 4096 -> 2048, F_MIN = 2049.  kernel: F_MIN = 4097.  memalloc: F_MIN = 1.
CLASS_END_TO_END = [
    ("kernel", 4097),
    ("nofs", 4097),
    ("high", 2049),
    ("atomic", 1537),
    ("memalloc", 1),
]


@pytest.mark.parametrize("era", [ERA_V4_13, ERA_V4_14, ERA_V6])
@pytest.mark.parametrize(("cls", "f_min"), CLASS_END_TO_END)
def test_class_flags_through_watermark(era, cls, f_min):
    flags = s.class_flags(cls, era, 0)
    assert s.watermark_ok(f_min, 0, 4096, flags, era, 0, KERNEL_HALF)
    assert not s.watermark_ok(f_min - 1, 0, 4096, flags, era, 0, KERNEL_HALF)


# Slow-path class rules ([PA4]/[PA6] __alloc_pages_slowpath, [OOM13]/[OOM6] out_of_memory):
#   "/* Caller is not willing to reclaim, we can't balance anything */
#    if (!can_direct_reclaim) goto nopage;"            -> atomic: no reclaim, no OOM killer
#   "/* Avoid recursion of direct reclaim */ if (current->flags & PF_MEMALLOC) goto nopage;"
#                                                       -> memalloc: no reclaim, no OOM killer
#   out_of_memory: "if (task_will_free_mem(current)) { mark_oom_victim(current); ... return true; }"
#   comes before "if (oc->gfp_mask && !(oc->gfp_mask & __GFP_FS)) return true;"
#                                                       -> nofs/noio: only the dying-task shortcut
CLASS_RULES = {
    # cls: (may_reclaim, oom, nomemalloc, nofail)
    "kernel": (True, s.OOM_FULL, False, False),
    "nofs": (True, s.OOM_SHORTCUT, False, False),
    "noio": (True, s.OOM_SHORTCUT, False, False),
    "high": (True, s.OOM_FULL, False, False),
    "atomic": (False, s.OOM_NONE, False, False),
    "nomemalloc": (True, s.OOM_FULL, True, False),
    "memalloc": (False, s.OOM_NONE, False, False),
    "nofail": (True, s.OOM_FULL, False, True),
}


def test_class_rules():
    assert set(CLASS_RULES) == set(s.CLASSES)
    for cls, rule in CLASS_RULES.items():
        r = s.CLASS_RULES[cls]
        assert (r.may_reclaim, r.oom, r.nomemalloc, r.nofail) == rule, cls


def test_class_tables_match_class_flags_and_rules():
    for era, f0, f1 in (
        (ERA_V4_13, V4_FLAGS, V4_FLAGS),
        (ERA_V4_14, V4_FLAGS, V4_FLAGS),
        (ERA_V6, V6_FLAGS_ORDER0, V6_FLAGS_ORDER_GT0),
    ):
        t = s.class_tables(era)
        assert set(t) == {"flags0", "flags1", "reclaim", "oom", "nomemalloc", "nofail"}
        for name, arr in t.items():
            assert arr.dtype == np.int64 and arr.shape == (s.N_CLASSES,), name
        assert t["flags0"].tolist() == [f0[c] for c in s.CLASSES]
        assert t["flags1"].tolist() == [f1[c] for c in s.CLASSES]
        assert t["reclaim"].tolist() == [int(CLASS_RULES[c][0]) for c in s.CLASSES]
        assert t["oom"].tolist() == [CLASS_RULES[c][1] for c in s.CLASSES]
        assert t["nomemalloc"].tolist() == [int(CLASS_RULES[c][2]) for c in s.CLASSES]
        assert t["nofail"].tolist() == [int(CLASS_RULES[c][3]) for c in s.CLASSES]


# ---------------------------------------------------------------------------
# parse_policy
#
# grant flags:
#   v4.13 gfp_pfmemalloc_allowed ([PA4], [SEED] "-"): "unlikely(test_thread_flag(TIF_MEMDIE))"
#       -> "return true" -> slow path "alloc_flags = ALLOC_NO_WATERMARKS;"     (per thread)
#   v4.14 __gfp_pfmemalloc_flags ([SEED] "+"): "else if (oom_reserves_allowed(current))
#       return ALLOC_OOM;" with oom_reserves_allowed: "if (!tsk_is_oom_victim(tsk)) return false;"
#                                                                              (per process)
#   !MMU ([SEED] mm/internal.h): "#else #define ALLOC_OOM ALLOC_NO_WATERMARKS #endif" and
#       "if (!IS_ENABLED(CONFIG_MMU) && !test_thread_flag(TIF_MEMDIE)) return false;" (per thread)
# victim exit ("Avoid allocations with no watermarks from looping endlessly"):
#   v4.13 [SEED] "-": "if (test_thread_flag(TIF_MEMDIE) && (alloc_flags == ALLOC_NO_WATERMARKS ||"
#   v4.14 [SEED] "+": "if (tsk_is_oom_victim(current) && (alloc_flags == ALLOC_OOM ||"
#   v6    [PA6]:      "if (tsk_is_oom_victim(current) && (alloc_flags & ALLOC_OOM ||"
# reaper:
#   v4.13 [OOM13] __oom_reap_task_mm: "mutex_lock(&oom_lock);" ... "unlock_oom: mutex_unlock(&oom_lock);"
#   v4.14 [OOM14]: "make the mm_has_notifiers check under the oom_lock" (lock still held)
#   v6    [OOM6] oom_reap_task_mm: "if (!mmap_read_trylock(mm)) {" -- no oom_lock;
#         "#define OOM_REAPER_DELAY (2*HZ)" ... "expires = jiffies + OOM_REAPER_DELAY;" = 2 s
#   !MMU: "#ifdef CONFIG_MMU ... oom_reaper ... #else static inline void wake_oom_reaper(...) {} #endif"
# ---------------------------------------------------------------------------
# name: (era, grant_flags, scope, victim_test, all_at_kill, reaper, reaper_takes_oom_lock,
#        reaper_extra_delay_us, oom_frac)
POLICIES = {
    "tif_memdie": (ERA_V4_13, NOWM, s.SCOPE_THREAD, s.VICTIM_TIF, False, True, True, 0.0, -1.0),
    "tif_memdie_all": (ERA_V4_13, NOWM, s.SCOPE_THREAD, s.VICTIM_TIF, True, True, True, 0.0, -1.0),
    "alloc_oom": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, -1.0),
    "nommu": (ERA_V4_14, NOWM, s.SCOPE_THREAD, s.VICTIM_PROCESS, False, False, False, 0.0, -1.0),
    "v6": (ERA_V6, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, False, 2_000_000.0, -1.0),
    "fraction:0": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, 0.0),
    "fraction:0.25": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, 0.25),
    "fraction:0.5": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, 0.5),
    "fraction:1": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, 1.0),
    "fraction:1.0": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, 1.0),
    "fraction:1e-3": (ERA_V4_14, OOM, s.SCOPE_PROCESS, s.VICTIM_PROCESS, False, True, True, 0.0, 0.001),
}
ERA_NAMES = {ERA_V4_13: "v4.13", ERA_V4_14: "v4.14", ERA_V6: "v6"}


@pytest.mark.parametrize(("name", "expected"), sorted(POLICIES.items()))
def test_parse_policy_fields(name, expected):
    p = s.parse_policy(name)
    got = (
        p.era,
        p.grant_flags,
        p.scope,
        p.victim_test,
        p.all_at_kill,
        p.reaper,
        p.reaper_takes_oom_lock,
        p.reaper_extra_delay_us,
        p.oom_frac,
    )
    assert got == expected
    assert p.name == name
    assert p.era_name == ERA_NAMES[expected[0]]


def test_every_named_policy_is_tested():
    named = {n for n in s.POLICY_NAMES if not n.endswith(":X")}
    assert named <= set(POLICIES)


def test_alloc_oom_grant_is_half_of_min_and_fraction_half_matches_it():
    # fraction:0.5 on an odd W: floor(0.5 * 1001) = 500 = 1001 / 2 (C division), so the same F_MIN = 502.
    for name in ("alloc_oom", "fraction:0.5"):
        p = s.parse_policy(name)
        assert s.watermark_ok(502, 0, 1001, p.grant_flags, p.era, H, p.oom_frac)
        assert not s.watermark_ok(501, 0, 1001, p.grant_flags, p.era, H, p.oom_frac)


BAD_POLICY_NAMES = [
    "fraction:-0.1",
    "fraction:1.0001",
    "fraction:2",
    "fraction:-1",
    "fraction:abc",
    "fraction:",
    "fraction:nan",
    "fraction:inf",
    "fraction:-inf",
    "fraction",
    "fraction:0.5:1",
    "TIF_MEMDIE",
    "alloc-oom",
    "v5",
    "v6.6",
    "",
    " tif_memdie",
]


def test_parse_policy_rejects():
    for bad in BAD_POLICY_NAMES:
        with pytest.raises(ValueError):
            s.parse_policy(bad)
    for bad in (None, 0.5, 3, b"v6"):
        with pytest.raises(ValueError, match="allowed"):
            s.parse_policy(bad)


def test_parse_policy_error_names_the_allowed_policies():
    with pytest.raises(ValueError, match="tif_memdie.*fraction:X"):
        s.parse_policy("nonesuch")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        s.parse_policy("fraction:1.5")


# ---------------------------------------------------------------------------
# min_free_kbytes: init_per_zone_wmark_min
#   v4.x [PA4]: "new_min_free_kbytes = int_sqrt(lowmem_kbytes * 16);"
#               "if (min_free_kbytes < 128) min_free_kbytes = 128;"
#               "if (min_free_kbytes > 65536) min_free_kbytes = 65536;"
#   v6   [PA6] calculate_min_free_kbytes: "min_free_kbytes = clamp(new_min_free_kbytes, 128, 262144);"
#   kernel comment table: "16MB: 512k ... 512MB: 2896k 1024MB: 4096k ... 4096MB: 8192k ... 16384MB: 16384k"
#   (it lists 8192MB as 11584k, but int_sqrt(8388608 * 16) = 11585: 11585**2 = 134212225 <= 134217728 <
#   11586**2 = 134235396).
# M = round(GiB * 262144) pages, lowmem_kbytes = 4 * M (MODEL.md 2 uses M for nr_free_buffer_pages).
# ---------------------------------------------------------------------------
MIN_FREE_KBYTES = [
    # (GiB, kbytes*16, v4.x, v6)
    (0.0005, 8384, 128, 128),  # M = round(131.072) = 131, kb = 524; isqrt(8384) = 91 -> clamp 128
    (0.015625, 262144, 512, 512),  # 16 MiB: isqrt(262144) = 512
    (0.5, 8388608, 2896, 2896),  # 2896**2 = 8386816 <= 8388608 < 2897**2 = 8392609
    (1, 16777216, 4096, 4096),
    (4, 67108864, 8192, 8192),
    (8, 134217728, 11585, 11585),
    (16, 268435456, 16384, 16384),
    (256, 4294967296, 65536, 65536),  # exactly the v4.x upper bound
    (512, 8589934592, 65536, 92681),  # 92681**2 = 8589767761 <= 8589934592 < 92682**2 = 8589953124
    (1024, 17179869184, 65536, 131072),
    (4096, 68719476736, 65536, 262144),  # exactly the v6 upper bound
    (8192, 137438953472, 65536, 262144),  # isqrt = 370727 -> clamp 262144
]


@pytest.mark.parametrize(("gib", "kb16", "v4", "v6"), MIN_FREE_KBYTES)
def test_min_free_kbytes(gib, kb16, v4, v6):
    assert kb16 == int(round(gib * 262144)) * 4 * 16  # the table's own input, not the function under test
    assert s.min_free_kbytes(gib, ERA_V4_13) == v4
    assert s.min_free_kbytes(gib, ERA_V4_14) == v4
    assert s.min_free_kbytes(gib, ERA_V6) == v6


# ---------------------------------------------------------------------------
# watermarks: __setup_per_zone_wmarks (one lowmem zone, so tmp = pages_min)
#   [PA4] and [PA6]: "unsigned long pages_min = min_free_kbytes >> (PAGE_SHIFT - 10);"   (>> 2)
#     "tmp = (u64)pages_min * zone->managed_pages; do_div(tmp, lowmem_pages);"      (= pages_min)
#     "tmp = max_t(u64, tmp >> 2, mult_frac(zone->managed_pages, watermark_scale_factor, 10000));"
#   v4.x: "zone->watermark[WMARK_LOW] = min_wmark_pages(zone) + tmp;
#          zone->watermark[WMARK_HIGH] = min_wmark_pages(zone) + tmp * 2;"
#   v6:   "zone->_watermark[WMARK_LOW] = min_wmark_pages(zone) + tmp;
#          zone->_watermark[WMARK_HIGH] = low_wmark_pages(zone) + tmp;"       (same: min + 2 * tmp)
# ---------------------------------------------------------------------------
WATERMARKS = [
    # (GiB, era, min_free_kbytes, wsf, (min, low, high))
    # 16 GiB: M = 4194304, mfk 16384 -> W = 4096; d = max(1024, 41943040 // 10000 = 4194) = 4194
    (16, ERA_V4_14, None, 10, (4096, 8290, 12484)),
    (16, ERA_V4_13, None, 10, (4096, 8290, 12484)),
    (16, ERA_V6, None, 10, (4096, 8290, 12484)),
    # THP-raised min_free_kbytes 67584 (MODEL.md 2): W = 16896; d = max(4224, 4194) = 4224
    (16, ERA_V4_14, 67584, 10, (16896, 21120, 25344)),
    # wsf = 1: d = max(1024, 4194304 // 10000 = 419) = 1024 (the "minimum size on small systems" arm)
    (16, ERA_V4_14, None, 1, (4096, 5120, 6144)),
    # wsf = 1000: d = 4194304000 // 10000 = 419430
    (16, ERA_V4_14, None, 1000, (4096, 423526, 842956)),
    # 1 GiB: M = 262144, mfk 4096 -> W = 1024; d = max(256, 2621440 // 10000 = 262) = 262
    (1, ERA_V4_13, None, 10, (1024, 1286, 1548)),
    # 0.5 GiB: M = 131072, mfk 2896 -> W = 724; d = max(724 >> 2 = 181, 131) = 181
    (0.5, ERA_V4_13, None, 10, (724, 905, 1086)),
    # 1 TiB: M = 268435456; d = 2684354560 // 10000 = 268435
    #   v6 mfk 131072 -> W = 32768;  v4.x mfk 65536 -> W = 16384
    (1024, ERA_V6, None, 10, (32768, 301203, 569638)),
    (1024, ERA_V4_14, None, 10, (16384, 284819, 553254)),
    # odd min_free_kbytes: W = 1001 >> 2 = 250; 16 MiB: M = 4096, d = max(62, 40960 // 10000 = 4) = 62
    (0.015625, ERA_V4_14, 1001, 10, (250, 312, 374)),
]


@pytest.mark.parametrize(("gib", "era", "mfk", "wsf", "expected"), WATERMARKS)
def test_watermarks(gib, era, mfk, wsf, expected):
    assert s.watermarks(gib, era, mfk, wsf) == expected


def test_default_watermark_is_a_quarter_of_min_free_kbytes():
    # 16 GiB, MODEL.md 2 defaults: W = 16384 // 4 = 4096 in every era.
    for era in (ERA_V4_13, ERA_V4_14, ERA_V6):
        assert s.watermarks(16, era, None, 10)[0] == 4096


# ---------------------------------------------------------------------------
# Model flag bits ([IH6]):
#   "#define ALLOC_RESERVES (ALLOC_NON_BLOCK|ALLOC_MIN_RESERVE|ALLOC_HIGHATOMIC|ALLOC_OOM)"
# ---------------------------------------------------------------------------
def test_alloc_reserves_v6_definition():
    assert s.ALLOC_RESERVES_V6 == ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM
    assert not s.ALLOC_RESERVES_V6 & (ALLOC_HIGH | ALLOC_HARDER | ALLOC_NO_WATERMARKS)


def test_alloc_flag_bits_are_distinct():
    bits = [
        ALLOC_HIGH,
        ALLOC_HARDER,
        ALLOC_OOM,
        ALLOC_NO_WATERMARKS,
        ALLOC_MIN_RESERVE,
        ALLOC_NON_BLOCK,
        ALLOC_HIGHATOMIC,
    ]
    assert ALLOC_WMARK_MIN == 0
    for b in bits:
        assert b > 0 and b & (b - 1) == 0
    assert len(set(bits)) == len(bits)
