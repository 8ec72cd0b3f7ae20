"""The episode engine: Numba kernels that simulate whole OOM episodes.

Python (:func:`build_inputs`) validates and packs a scenario and a policy into
plain arrays; :func:`run_block` (``@njit(parallel=True)``, ``prange`` over
blocks of episodes) fills one row of outcomes per episode. Each episode is a
pure function of ``(seed, episode index)`` through the counter-based streams
of :mod:`depletion.rng`, so results do not depend on thread count or
chunking, and every policy sees the same workload for the same episode.

The rules simulated are MODEL.md sections 2-13 as read in
``docs/model-notes.md``.

:func:`trace_one` runs the same :func:`_episode` for one episode with trace
buffers (:mod:`depletion.trace`); :func:`run_block` passes ``None`` instead,
and Numba compiles that specialisation with the tracing branches pruned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import prange

from depletion import semantics as sem
from depletion._jit import njit
from depletion.config import DIST_KIND, MAX_ORDER
from depletion.rng import D_EXPONENTIAL as D_EXP_KIND
from depletion.rng import D_FIXED as D_FIXED_KIND
from depletion.rng import D_GEOMETRIC as D_GEOM_KIND
from depletion.rng import D_POISSON as D_POIS_KIND
from depletion.rng import D_UNIFORM as D_UNIF_KIND
from depletion.rng import choose, exponential, sample, stream_key, uniform

# ---------------------------------------------------------------- outputs
OUTCOLS = (
    (
        "exhausted",
        "min_free",
        "victim_failures",
        "stalled",
        "max_stall_us",
        "resolve_us",
        "reaper_gave_up",
        "full_reserve_threads",
        "oom_rekills",
        "W",
        "F0",
        "n_threads",
        "victim_requests",
        "events",
        "F_end",
        "allocated",
        "freed_hold",
        "freed_exit",
        "freed_mm",
        "freed_reclaim",
        "freed_bystander",
        "rss_total",
        "min_grant_free",
        "truncated",
    )
    + tuple(f"bystander_failures.{c}" for c in sem.CLASSES)
    + ("log_weight",)
)
NCOL = len(OUTCOLS)
COL = {name: i for i, name in enumerate(OUTCOLS)}
O_EXH, O_MINF, O_VFAIL, O_STALL, O_MAXSTALL, O_RESOLVE, O_GAVEUP, O_FULLRES, O_REKILL = range(9)
O_W, O_F0, O_NTH, O_VREQ, O_EVENTS, O_FEND, O_ALLOC, O_FHOLD, O_FEXIT, O_FMM, O_FRECL, O_FBYST = range(9, 21)
O_RSS, O_MINGRANT, O_TRUNC, O_BFAIL = 21, 22, 23, 24
#: log likelihood ratio log p/q of the episode's tilted draws (0.0 without a tilt); see :mod:`depletion.rare`
O_LW = NCOL - 1

# ------------------------------------------------------------- parameters
(
    P_W,
    P_HIGHATOMIC,
    P_VICTIMS,
    P_ANON,
    P_INALLOC,
    P_STACK,
    P_TEARDOWN,
    P_REAPER_ON,
    P_LOCK_P,
    P_RETRY_US,
    P_RETRIES,
    P_REAP_RATE,
    P_YIELD,
    P_ROUNDS,
    P_LOCK_HOLD,
    P_JIFFY,
    P_FLOOR,
    P_STALL,
    P_HORIZON,
    P_ERA,
    P_GRANT,
    P_SCOPE,
    P_VTEST,
    P_ALL_AT_KILL,
    P_REAPER_LOCK,
    P_REAPER_EXTRA,
    P_OOM_FRAC,
    P_MAX_EVENTS,
) = range(28)
NPARAM = 28

D_F0, D_THREADS, D_SHARERS, D_RSS, D_WAKE, D_NREQ, D_GAP, D_HOLD, D_RECLAIM, D_REAPDELAY = range(10)
DIST_ORDER = (
    "f0_frac",
    "threads",
    "mm_sharers",
    "rss_pages",
    "wake_us",
    "exit_allocs",
    "exit_gap_us",
    "hold_us",
    "reclaim_round_us",
    "reaper_delay_us",
)
NORD = MAX_ORDER + 1

#: the watermark check of :mod:`depletion.semantics`, compiled for the kernels
watermark_ok = njit(sem.watermark_ok)
NCLS = sem.N_CLASSES

# stream tags (top bits of the stream id)
TAG_VICTIM = np.uint64(1) << np.uint64(56)
TAG_WORK = np.uint64(2) << np.uint64(56)
TAG_RECLAIM = np.uint64(3) << np.uint64(56)
TAG_BYST = np.uint64(4) << np.uint64(56)
TAG_REAPER = np.uint64(5) << np.uint64(56)
SH40 = np.uint64(36)
SH20 = np.uint64(18)

# thread phases
PH_START, PH_RECLAIM, PH_LOCK, PH_JIFFY, PH_DONE = 0, 1, 2, 3, 4
# thread int rows
TI_PROC, TI_MM, TI_NREQ, TI_REQ, TI_PHASE, TI_HELD, TI_ORDER, TI_CLS, TI_ROUNDS = range(9)
TI_LASTG, TI_TGRANT, TI_RDRAW, TI_S, TI_I, TI_HOFF = range(9, 15)
NTI = 15
# thread float rows
TF_START, TF_ACT, TF_HMIN = 0, 1, 2  # request start, next action, earliest hold end
NTF = 3
# mm rows (float)
MF_XN, MF_XR, MF_T, MF_NEXT, MF_DONE_T = range(5)
NMF = 5
# mm rows (int)
MI_NN, MI_NR, MI_IN, MI_IR, MI_ALIVE, MI_TD, MI_RP, MI_SKIP, MI_DONE = range(9)
NMI = 9

LOCK_FREE = -1
LOCK_REAPER = -2
INF = math.inf

# ------------------------------------------------------------ episode traces
#: event kinds of a trace (:mod:`depletion.trace`), in code order
TRACE_KINDS = (
    "start",  # t = 0: F(0)
    "victim_request",  # a victim thread starts a request (pages: its size)
    "victim_grant",  # a victim request is granted (pages allocated)
    "victim_fail",  # a victim request fails (counted in victim_failures)
    "victim_hold_freed",  # a victim allocation is freed hold_us after its grant
    "thread_exit",  # a victim thread exits (pages: what it held plus its stack)
    "reclaim_round",  # a direct-reclaim round ends (pages: reclaim_yield_pages)
    "oom_pass",  # a victim thread takes oom_lock (an OOM-killer pass)
    "oom_lock_busy",  # oom_lock is held: the thread sleeps a jiffy (a pass without the lock)
    "bystander_grant",
    "bystander_fail",
    "reaper_start",  # the reaper takes the mmap lock of mm ``mm`` and starts reaping
    "reaper_fail",  # a reaper attempt fails to take the mmap lock
    "reaper_give_up",  # the reaper gives up on mm ``mm`` (MMF_OOM_SKIP)
    "reaper_done",  # the reaper has reaped every reapable page of mm ``mm`` (MMF_OOM_SKIP)
    "mm_freed",  # mm ``mm`` is fully freed
    "shortcut",  # post-victim shortcut: bystander traffic is no longer simulated
    "end",  # the episode's end (horizon, truncation or resolution)
)
(
    K_START, K_VREQ, K_VGRANT, K_VFAIL, K_VHOLD, K_EXIT, K_RECLAIM, K_OOM, K_OOMBUSY, K_BGRANT, K_BFAIL,
    K_REAPSTART, K_REAPFAIL, K_GIVEUP, K_REAPDONE, K_MMFREED, K_SHORTCUT, K_END,
) = range(len(TRACE_KINDS))  # fmt: skip
#: integer columns of a trace row (``tri``); the time is in ``trt``
TR_F, TR_KIND, TR_THREAD, TR_MM, TR_CLS, TR_PAGES, TR_FMM, TR_FBYST = range(8)
NTR = 8


# ================================================================ helpers
@njit(inline="always")
def _tset(tt, tw, L, i, t):
    """Set the time of slot ``i`` and restore the tournament tree above it.

    ``tt[L + i]`` holds slot ``i``'s time, internal node ``p`` the minimum of
    its children (``tt[p]``) and the winning slot (``tw[p]``, lower index on
    ties); the selection is branch-free.
    """
    p = L + i
    tt[p] = t
    p >>= 1
    while p >= 1:
        l = 2 * p
        a = tt[l]
        b = tt[l + 1]
        c = np.int64(b < a)
        tt[p] = min(a, b)
        tw[p] = tw[l + c]
        p >>= 1


@njit
def _tree_init(tt, tw, L):
    for i in range(L):
        tw[L + i] = i
    for p in range(L - 1, 0, -1):
        a = tt[2 * p]
        b = tt[2 * p + 1]
        c = np.int64(b < a)
        tt[p] = min(a, b)
        tw[p] = tw[2 * p + c]


@njit
def _heap_push(ht, hp, n, t, pages):
    i = n
    while i > 0:
        par = (i - 1) >> 1
        if ht[par] <= t:
            break
        ht[i] = ht[par]
        hp[i] = hp[par]
        i = par
    ht[i] = t
    hp[i] = pages


@njit
def _heap_pop(ht, hp, n):
    """Remove the top of a heap of size ``n`` (caller reads it first)."""
    n -= 1
    t = ht[n]
    pg = hp[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and ht[c + 1] < ht[c]:
            c += 1
        if ht[c] >= t:
            break
        ht[i] = ht[c]
        hp[i] = hp[c]
        i = c
    if n > 0:
        ht[i] = t
        hp[i] = pg


@njit
def _iround(x):
    return int(math.floor(x + 0.5))


@njit(inline="always")
def _dist(D, idx, key, draw):
    kind = int(D[idx, 0])
    if kind == D_EXP_KIND:  # the common case, inlined at the call site
        return -D[idx, 1] * math.log(uniform(key, draw))
    if kind == D_FIXED_KIND:
        return D[idx, 1]
    return sample(kind, D[idx, 1], D[idx, 2], key, draw)


#: width of a row of the tilt tables ``TL`` and ``BTL``: ``(kind, c0, c1, c2, c3, c4)``
NTL = 6


@njit
def _lr(TL, idx, x):
    """``log p(x) - log q(x)`` of a value ``x`` drawn from row ``idx`` of the proposal.

    ``TL[idx]`` holds the family (``0``: not tilted, the ratio is 1) and
    coefficients precomputed by :func:`tilt_row` from the nominal law ``p``
    and the proposal ``q`` of the same family. ``x`` is the value exactly as
    :func:`depletion.rng.sample` returns it (before any rounding), so the
    ratio is that of the laws of the drawn variate.
    """
    kind = int(TL[idx, 0])
    if kind == 0:
        return 0.0
    if kind == D_EXP_KIND:
        return TL[idx, 1] + TL[idx, 2] * x
    if kind == D_POIS_KIND:
        return TL[idx, 1] if x == 0.0 else TL[idx, 1] + TL[idx, 2] * x
    if kind == D_GEOM_KIND:
        return TL[idx, 1] if x == 1.0 else TL[idx, 1] + TL[idx, 2] * (x - 1.0)
    if kind == D_UNIF_KIND:
        return TL[idx, 1] if TL[idx, 2] <= x <= TL[idx, 3] else -INF
    # lognormal
    z = math.log(x)
    a = z - TL[idx, 2]
    b = z - TL[idx, 4]
    return TL[idx, 1] - a * a * TL[idx, 3] + b * b * TL[idx, 5]


@njit
def _thread_stream(tag, v, s, i):
    return tag | (np.uint64(v) << SH40) | (np.uint64(s) << SH20) | np.uint64(i)


@njit(inline="always")
def _n_sharers(D, kv):
    """Sharer processes of a victim (draw 0 of the victim's stream)."""
    return max(0, _iround(_dist(D, D_SHARERS, kv, 0)))


@njit(inline="always")
def _n_threads(D, kv, s):
    """Threads of process ``s`` of a victim (draw 2 + s of the victim's stream; at least 1)."""
    return max(1, _iround(_dist(D, D_THREADS, kv, 2 + s)))


@njit
def count_threads(seed, e, P, D):
    """Threads and processes of episode ``e`` (same draws as the episode)."""
    V = int(P[P_VICTIMS])
    T = 0
    NP = 0
    for v in range(V):
        kv = stream_key(seed, e, TAG_VICTIM | np.uint64(v))
        ns = _n_sharers(D, kv)
        for s in range(ns + 1):
            nt = _n_threads(D, kv, s)
            T += nt
            NP += 1
    return T, NP


# ================================================================ episode
@njit(inline="always")
def _mm_progress(v, t, mf, mi, td_rate, rp_rate):
    """Teardown and reaping of mm ``v`` from its last credit to ``t`` (pure): ``(dt, xn, in_, xr, ir)``.

    ``xn``/``xr`` are the new fractional pages done of the unreapable and
    reapable pools and ``in_``/``ir`` the whole pages freed so far; ``dt <= 0``
    means nothing to do. :func:`_mm_advance` stores them, :func:`_mm_pending`
    only reads them, so the two can never disagree.
    """
    dt = t - mf[MF_T, v]
    xn = mf[MF_XN, v]
    xr = mf[MF_XR, v]
    in_ = mi[MI_IN, v]
    ir = mi[MI_IR, v]
    if dt <= 0.0:
        return dt, xn, in_, xr, ir
    nn = mi[MI_NN, v]
    nr = mi[MI_NR, v]
    rate_r = 0.0
    if mi[MI_TD, v] == 1:
        if xn < nn:
            xn = xn + td_rate * dt
            if xn > nn:
                xn = float(nn)
            in_ = min(nn, int(math.floor(xn)))
        else:
            rate_r += td_rate
    if mi[MI_RP, v] == 1:
        rate_r += rp_rate
    if rate_r > 0.0 and xr < nr:
        xr = xr + rate_r * dt
        if xr > nr:
            xr = float(nr)
        ir = min(nr, int(math.floor(xr)))
    return dt, xn, in_, xr, ir


@njit
def _mm_advance(v, t, mf, mi, td_rate, rp_rate):
    """Credit the pages teardown and reaper freed on mm ``v`` up to ``t``; return them."""
    dt, xn, in_, xr, ir = _mm_progress(v, t, mf, mi, td_rate, rp_rate)
    if dt <= 0.0:
        return 0
    freed = (in_ - mi[MI_IN, v]) + (ir - mi[MI_IR, v])
    mf[MF_T, v] = t
    mf[MF_XN, v] = xn
    mf[MF_XR, v] = xr
    mi[MI_IN, v] = in_
    mi[MI_IR, v] = ir
    return freed


@njit
def _mm_next(v, mf, mi, td_rate, rp_rate):
    """Time of the next pool event of mm ``v`` (a pool empties), or inf."""
    t = mf[MF_T, v]
    nn = mi[MI_NN, v]
    nr = mi[MI_NR, v]
    best = INF
    rate_r = 0.0
    if mi[MI_TD, v] == 1:
        if mi[MI_IN, v] < nn:
            if td_rate > 0.0:
                best = t + (nn - mf[MF_XN, v]) / td_rate
        else:
            rate_r += td_rate
    if mi[MI_RP, v] == 1:
        rate_r += rp_rate
    if mi[MI_IR, v] < nr:
        if rate_r > 0.0:
            tr = t + (nr - mf[MF_XR, v]) / rate_r
            if tr < best:
                best = tr
    elif mi[MI_RP, v] == 1:
        best = t  # the reaper is on an empty pool: it finishes now
    if mi[MI_TD, v] == 1 and mi[MI_IN, v] >= nn and mi[MI_IR, v] >= nr and mi[MI_DONE, v] == 0:
        best = t  # fully freed
    return best


@njit
def _advance_all(t, V, mf, mi, td_rate, rp_rate):
    """Credit every mm's teardown and reaping up to ``t``; return the pages freed."""
    freed = 0
    for v in range(V):
        if mi[MI_TD, v] == 1 or mi[MI_RP, v] == 1:
            freed += _mm_advance(v, t, mf, mi, td_rate, rp_rate)
    return freed


@njit(inline="always")
def _credit_holds(t, ht, hp, nheap):
    """Free the bystander holds that ended by ``t``: ``(pages, new heap size)``."""
    freed = 0
    while nheap > 0 and ht[0] <= t:
        freed += hp[0]
        _heap_pop(ht, hp, nheap)
        nheap -= 1
    return freed, nheap


@njit(inline="always")
def _credit_all(t, V, mf, mi, td_rate, rp_rate, ht, hp, nheap):
    """Make F exact at ``t``: ``(mm pages, bystander hold pages, new heap size)``."""
    freed = _advance_all(t, V, mf, mi, td_rate, rp_rate)
    fh, nheap = _credit_holds(t, ht, hp, nheap)
    return freed, fh, nheap


@njit
def _mm_pending(v, t, mf, mi, td_rate, rp_rate):
    """Pages :func:`_mm_advance` would credit on mm ``v`` at ``t``, without changing the state."""
    if mi[MI_TD, v] != 1 and mi[MI_RP, v] != 1:
        return 0  # _advance_all skips such an mm
    dt, xn, in_, xr, ir = _mm_progress(v, t, mf, mi, td_rate, rp_rate)
    if dt <= 0.0:
        return 0
    return (in_ - mi[MI_IN, v]) + (ir - mi[MI_IR, v])


@njit
def _trace(trt, tri, trn, t, kind, thread, mm, cls, pages, F, fmm, fbyst, V, mf, mi, td_rate, rp_rate, ht, hp, nheap):
    """Append one event to an episode trace (only called when tracing).

    ``F``, ``fmm`` and ``fbyst`` are the engine's lazily credited free pages
    and its counters of mm and bystander-hold frees; the row gets the true
    values at ``t``: plus what teardown and reaping have freed by ``t`` and
    the bystander holds that ended by ``t``, computed without changing the
    state (:func:`_mm_pending`, a scan of the hold heap), so tracing cannot
    change the episode. ``trn = [rows, truncated]``: a full buffer sets
    ``truncated`` and drops the row.
    """
    n = trn[0]
    if n >= trt.shape[0]:
        trn[1] = 1
        return
    pmm = 0
    for v in range(V):
        pmm += _mm_pending(v, t, mf, mi, td_rate, rp_rate)
    pby = 0
    for i in range(nheap):
        if ht[i] <= t:
            pby += hp[i]
    trt[n] = t
    tri[n, TR_F] = F + pmm + pby
    tri[n, TR_KIND] = kind
    tri[n, TR_THREAD] = thread
    tri[n, TR_MM] = mm
    tri[n, TR_CLS] = cls
    tri[n, TR_PAGES] = pages
    tri[n, TR_FMM] = fmm + pmm
    tri[n, TR_FBYST] = fbyst + pby
    trn[0] = n + 1


@njit
def _trace_reaper(trt, tri, trn, t, g0, m0, d0, rs, ch, F, fmm, fbyst, V, mf, mi, td_rate, rp_rate, ht, hp, nheap):
    """Trace what one :func:`_reaper_event` did, from the reaper state before it (``g0``: RS_GIVEUP,
    ``m0``: RS_MM, ``d0``: RS_DRAW) and after it (``rs``; ``ch``: the mm it started reaping or -1)."""
    if g0 == 1:
        _trace(trt, tri, trn, t, K_GIVEUP, -1, m0, -1, 0, F, fmm, fbyst, V, mf, mi, td_rate, rp_rate, ht, hp, nheap)
    if rs[RS_DRAW] > d0:
        kind = K_REAPSTART if ch >= 0 else K_REAPFAIL
        _trace(trt, tri, trn, t, kind, -1, rs[RS_MM], -1, 0, F, fmm, fbyst, V, mf, mi, td_rate, rp_rate, ht, hp,
               nheap)  # fmt: skip


@njit(inline="always")
def _try_req(F, k, W, own, gflags, first, hasg, era, highatomic, oom_frac):
    """One try of a victim request: ``(passed, used the grant, a NO_WATERMARKS try failed)``.

    The first try of a request uses the class's own flags, then (same
    instant) the grant; later tries use the grant if the thread holds one.
    """
    ok = False
    usedg = False
    nwf = False
    if first or not hasg:
        ok = watermark_ok(F, k, W, own, era, highatomic, oom_frac)
        if not ok and (own & sem.ALLOC_NO_WATERMARKS) != 0:
            nwf = True
    if not ok and hasg:
        usedg = True
        ok = watermark_ok(F, k, W, gflags, era, highatomic, oom_frac)
        if not ok and (gflags & sem.ALLOC_NO_WATERMARKS) != 0:
            nwf = True
    return ok, usedg, nwf


# reaper state (int64 array); RS_NOK / RS_NFAIL count the attempts that took / missed the mmap lock
RS_MM, RS_ATT, RS_DRAW, RS_WAIT, RS_GIVEUP, RS_LOCK, RS_GAVEUP, RS_NOK, RS_NFAIL = range(9)
NRS = 9


@njit
def _reaper_event(t, rs, mi, mf, V, kr, lock_p, retries, retry_us, reaper_lock, td_rate, rp_rate):
    """The reaper's timer fired at ``t``.

    Returns ``(next reaper time, pages freed while crediting, mm whose pool
    event must be rescheduled or -1)``.
    """
    freed = 0
    if rs[RS_GIVEUP] == 1:
        # the sleep after the last failed attempt is over: give up on this mm
        rs[RS_GIVEUP] = 0
        rs[RS_GAVEUP] = 1
        mi[MI_SKIP, rs[RS_MM]] = 1
        rs[RS_MM] += 1
        rs[RS_ATT] = 0
    while rs[RS_MM] < V and (mi[MI_SKIP, rs[RS_MM]] == 1 or mi[MI_DONE, rs[RS_MM]] == 1):
        rs[RS_MM] += 1
        rs[RS_ATT] = 0
    if rs[RS_MM] >= V:
        if rs[RS_LOCK] == LOCK_REAPER:
            rs[RS_LOCK] = LOCK_FREE
        return INF, freed, -1
    if reaper_lock and rs[RS_LOCK] != LOCK_REAPER:
        if rs[RS_LOCK] != LOCK_FREE:
            rs[RS_WAIT] = 1  # woken when the holder releases oom_lock
            return INF, freed, -1
        rs[RS_LOCK] = LOCK_REAPER
    u = uniform(kr, rs[RS_DRAW])
    rs[RS_DRAW] += 1
    rs[RS_ATT] += 1
    if u <= lock_p:
        rs[RS_NOK] += 1
        v = rs[RS_MM]
        freed += _mm_advance(v, t, mf, mi, td_rate, rp_rate)
        mf[MF_T, v] = t
        mi[MI_RP, v] = 1
        return INF, freed, v
    rs[RS_NFAIL] += 1
    if rs[RS_LOCK] == LOCK_REAPER:
        rs[RS_LOCK] = LOCK_FREE
    if rs[RS_ATT] >= retries:
        rs[RS_GIVEUP] = 1  # oom_reap_task sleeps HZ/10 after the last failure too
    return t + retry_us, freed, -1


@njit
def _mm_event(t, v, rs, mi, mf, td_rate, rp_rate):
    """A pool of mm ``v`` empties at ``t``.

    Returns ``(pages freed, next pool event of v, reaper wake-up time or -1,
    1 if the mm is now fully freed)``.
    """
    freed = _mm_advance(v, t, mf, mi, td_rate, rp_rate)
    nn = mi[MI_NN, v]
    nr = mi[MI_NR, v]
    # snap pools that were due now (float rounding of the crossing time)
    if mi[MI_TD, v] == 1 and mi[MI_IN, v] < nn and mf[MF_XN, v] >= nn - 1e-6 * (1.0 + nn):
        freed += nn - mi[MI_IN, v]
        mi[MI_IN, v] = nn
        mf[MF_XN, v] = float(nn)
    if mi[MI_IR, v] < nr and mf[MF_XR, v] >= nr - 1e-6 * (1.0 + nr):
        freed += nr - mi[MI_IR, v]
        mi[MI_IR, v] = nr
        mf[MF_XR, v] = float(nr)
    wake = -1.0
    if mi[MI_RP, v] == 1 and mi[MI_IR, v] >= nr:
        # the reaper has reaped everything: MMF_OOM_SKIP, on to the next mm
        mi[MI_RP, v] = 0
        mi[MI_SKIP, v] = 1
        if rs[RS_LOCK] == LOCK_REAPER:
            rs[RS_LOCK] = LOCK_FREE
        rs[RS_MM] += 1
        rs[RS_ATT] = 0
        wake = t
    if mi[MI_TD, v] == 1 and mi[MI_IN, v] >= nn and mi[MI_IR, v] >= nr and mi[MI_DONE, v] == 0:
        mi[MI_DONE, v] = 1
        mi[MI_SKIP, v] = 1
        mi[MI_TD, v] = 0
        mi[MI_RP, v] = 0
        mf[MF_DONE_T, v] = t
        return freed, INF, wake, 1
    return freed, _mm_next(v, mf, mi, td_rate, rp_rate), wake, 0


@njit
def _drain(
    t, t_reap, V, rs, mi, mf, horizon, kr, lock_p, retries, retry_us, reaper_lock, td_rate, rp_rate,
    F, fmm, fbyst, ht, hp, nheap, trt, tri, trn,
):  # fmt: skip
    """Run only the reaper and the mm pools from ``t``, with no victim thread left.

    Uses ``mf[MF_NEXT]`` as the pool event times. Stops when every mm is
    fully freed (returns that time) or at ``horizon`` (returns inf, pools
    credited up to the horizon). Returns ``(end time, pages freed)``. Pass
    copies of the state to look ahead without changing the episode.

    ``F`` ... ``nheap`` (the engine's free pages, its counters of mm and
    bystander-hold frees and the hold heap) are read only to trace the
    drain's events into ``trt``, ``tri``, ``trn`` (see :func:`_trace`); pass
    ``None`` for those three not to trace.
    """
    freed = 0
    ndone = 0
    for v in range(V):
        ndone += mi[MI_DONE, v]
    while ndone < V:
        tmin = t_reap
        vmin = -1
        for v in range(V):
            if mf[MF_NEXT, v] < tmin:
                tmin = mf[MF_NEXT, v]
                vmin = v
        if tmin > horizon:
            freed += _advance_all(horizon, V, mf, mi, td_rate, rp_rate)
            return INF, freed
        if vmin < 0:
            g0 = rs[RS_GIVEUP]
            m0 = rs[RS_MM]
            d0 = rs[RS_DRAW]
            t_reap, fr, ch = _reaper_event(tmin, rs, mi, mf, V, kr, lock_p, retries, retry_us, reaper_lock,
                                           td_rate, rp_rate)  # fmt: skip
            freed += fr
            if ch >= 0:
                mf[MF_NEXT, ch] = _mm_next(ch, mf, mi, td_rate, rp_rate)
            if trt is not None:
                _trace_reaper(trt, tri, trn, tmin, g0, m0, d0, rs, ch, F + freed, fmm + freed, fbyst, V, mf, mi,
                              td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
        else:
            fr, nxt, wake, done = _mm_event(tmin, vmin, rs, mi, mf, td_rate, rp_rate)
            freed += fr
            mf[MF_NEXT, vmin] = nxt
            if wake >= 0.0:
                t_reap = wake
            ndone += done
            if trt is not None:
                if wake >= 0.0:
                    _trace(trt, tri, trn, tmin, K_REAPDONE, -1, vmin, -1, 0, F + freed, fmm + freed, fbyst, V, mf,
                           mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                if done == 1:
                    _trace(trt, tri, trn, tmin, K_MMFREED, -1, vmin, -1, 0, F + freed, fmm + freed, fbyst, V, mf,
                           mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
            if ndone == V:
                return tmin, freed
    return t, freed


@njit
def _episode(
    seed, e, P, D, class_cum, order_cum, cflags0, cflags1, creclaim, coom, cnomem, cnofail,
    brate, border_cum, bhold, tilt, TL, BTL, class_lr, order_lr, border_lr, rate_lr, lock_lr,
    ti, tf, tk, pm, mf, mi, ht, hp, tw, tt, hold_t, hold_p, kb, bidx, bfail, rs, mf2, mi2, rs2, bcnt, bwin,
    trt, tri, trn, out,
):  # fmt: skip
    """Simulate episode ``e`` into ``out`` (one row).

    The distribution tables (``D``, ``class_cum``, ``order_cum``, ``brate``,
    ``border_cum``, ``bhold``, ``P[P_LOCK_P]``) are the law the draws are
    taken from. With ``tilt != 0`` that law is an importance-sampling
    proposal ``q`` and the tilt tables (see :func:`tilt_tables`) give
    ``log p - log q`` against the nominal law ``p``: every tilted draw the
    episode makes adds its log ratio to ``out[O_LW]`` (the reaper's mmap-lock
    attempts as Bernoulli draws, counted in ``rs``), and each tilted
    bystander stream adds its Poisson-process ratio over the episode's real
    end, piecewise when its rate switches (``brate`` while a victim thread is
    alive, ``rate_lr[c, 4]`` after the last one exits; docs/model-notes.md,
    "Rare events"). With ``tilt == 0`` nothing of this runs and the tables
    are not read.

    ``trt``, ``tri``, ``trn``: ``None`` (Numba then compiles the episode
    without any tracing code: :func:`run_block`), or trace buffers that
    receive one row per event (:func:`_trace`, :data:`TRACE_KINDS`; used by
    :func:`trace_one`). Tracing only reads the state, so the outcome row is
    the same either way.

    Returns 0, 1 if the bystander hold heap is too small, or 2 if the
    per-thread hold pool is too small (the caller grows it and reruns the
    episode, which is a pure function of ``(seed, e)``).
    """
    W = int(P[P_W])
    highatomic = int(P[P_HIGHATOMIC])
    V = int(P[P_VICTIMS])
    era = int(P[P_ERA])
    gflags = int(P[P_GRANT])
    scope = int(P[P_SCOPE])
    vtest = int(P[P_VTEST])
    oom_frac = P[P_OOM_FRAC]
    rounds_max = int(P[P_ROUNDS])
    lock_hold = P[P_LOCK_HOLD]
    jiffy = P[P_JIFFY]
    stall_us = P[P_STALL]
    horizon = P[P_HORIZON]
    floor_ = int(P[P_FLOOR])
    stack = int(P[P_STACK])
    yield_ = int(P[P_YIELD])
    td_rate = P[P_TEARDOWN]
    rp_rate = P[P_REAP_RATE]
    reaper_on = P[P_REAPER_ON] > 0.0
    reaper_lock = P[P_REAPER_LOCK] > 0.0
    lock_p = P[P_LOCK_P]
    retry_us = P[P_RETRY_US]
    retries = int(P[P_RETRIES])
    anon = P[P_ANON]
    inalloc = P[P_INALLOC]
    max_events = int(P[P_MAX_EVENTS])
    nograntfull = (gflags & sem.ALLOC_NO_WATERMARKS) != 0
    heap_cap = ht.shape[0]

    for c in range(out.shape[0]):
        out[c] = 0.0

    lw = 0.0  # log likelihood ratio of the tilted draws
    ke = stream_key(seed, e, np.uint64(0))
    x = _dist(D, D_F0, ke, 0)
    if tilt:
        lw += _lr(TL, D_F0, x)
    F = _iround(x * W)
    if F < 0:
        F = 0
    F0 = F
    min_free = F
    exhausted = 1 if F <= floor_ else 0
    allocated = 0
    freed_hold = 0
    freed_exit = 0
    freed_mm = 0
    freed_recl = 0
    freed_byst = 0
    min_grant = INF
    vfail = 0
    vreq = 0
    stalled = 0
    max_stall = 0.0
    full_res = 0
    rekills = 0
    events = 0
    truncated = 0

    # ---- processes, threads, mms
    T = 0
    NP = 0
    rss_total = 0
    for v in range(V):
        kv = stream_key(seed, e, TAG_VICTIM | np.uint64(v))
        ns = _n_sharers(D, kv)
        rss = max(0, _iround(_dist(D, D_RSS, kv, 1)))
        rss_total += rss
        nr = int(math.floor(anon * rss))
        mi[MI_NN, v] = rss - nr
        mi[MI_NR, v] = nr
        for r in range(MI_IN, NMI):
            mi[r, v] = 0
        mf[MF_XN, v] = 0.0
        mf[MF_XR, v] = 0.0
        mf[MF_T, v] = 0.0
        mf[MF_NEXT, v] = INF
        mf[MF_DONE_T, v] = INF
        for s in range(ns + 1):
            nt = _n_threads(D, kv, s)
            marked = 1 if (V > 1 or s == 0 or P[P_ALL_AT_KILL] > 0.0) else 0
            pm[NP] = marked
            for i in range(nt):
                ti[TI_PROC, T] = NP
                ti[TI_MM, T] = v
                ti[TI_S, T] = s
                ti[TI_I, T] = i
                tg = 1 if ((marked == 1 and i == 0) or P[P_ALL_AT_KILL] > 0.0) else 0
                ti[TI_TGRANT, T] = tg
                if tg == 1 and scope == sem.SCOPE_THREAD and nograntfull:
                    full_res += 1
                T += 1
            mi[MI_ALIVE, v] += nt
            NP += 1

    # slots: threads 0..T-1, bystanders T..T+NCLS-1, reaper T+NCLS, mms after.
    # Bystander hold ends are not events: they only raise F, so they are
    # credited lazily (with the mm frees) whenever F must be exact.
    S_BYST = T
    S_REAP = T + NCLS
    S_MM = T + 1 + NCLS
    nslots = S_MM + V
    L = 1
    while L < nslots:
        L <<= 1
    for i in range(L):
        tt[L + i] = INF

    hoff = 0
    hcap = hold_t.shape[0]
    for j in range(T):
        v = ti[TI_MM, j]
        s = ti[TI_S, j]
        i = ti[TI_I, j]
        kw = stream_key(seed, e, _thread_stream(TAG_WORK, v, s, i))
        tk[0, j] = kw
        tk[1, j] = stream_key(seed, e, _thread_stream(TAG_RECLAIM, v, s, i))
        inal = uniform(kw, 0) <= inalloc
        x = _dist(D, D_NREQ, kw, 2)
        if tilt:
            lw += _lr(TL, D_NREQ, x)
        n = max(0, _iround(x))
        if inal and n < 1:
            n = 1
        ti[TI_NREQ, j] = n
        ti[TI_REQ, j] = 0
        ti[TI_HELD, j] = 0
        ti[TI_ROUNDS, j] = 0
        ti[TI_LASTG, j] = 0
        ti[TI_RDRAW, j] = 0
        ti[TI_PHASE, j] = PH_START
        ti[TI_HOFF, j] = hoff
        if hoff + n > hcap:
            return 2
        for r in range(n):
            hold_t[hoff + r] = INF
        hoff += n
        tf[TF_START, j] = 0.0
        tf[TF_HMIN, j] = INF
        if inal:
            tf[TF_ACT, j] = 0.0
        else:
            x = _dist(D, D_WAKE, kw, 1)
            x2 = _dist(D, D_GAP, kw, 3)
            if tilt:
                lw += _lr(TL, D_WAKE, x) + _lr(TL, D_GAP, x2)
            tf[TF_ACT, j] = x + x2
        tt[L + j] = tf[TF_ACT, j]

    # bystanders
    bmax = 1  # largest bystander request that can occur
    for c in range(NCLS):
        bidx[c] = 0
        bfail[c] = 0
        if brate[c] > 0.0:
            kb[c] = stream_key(seed, e, TAG_BYST | np.uint64(c))
            tt[L + S_BYST + c] = exponential(kb[c], 0, 1.0 / brate[c])
            for k in range(NORD):
                if border_cum[c, k] > (border_cum[c, k - 1] if k > 0 else 0.0) and (1 << k) > bmax:
                    bmax = 1 << k

    # reaper
    kr = stream_key(seed, e, TAG_REAPER)
    for r in range(NRS):
        rs[r] = 0
    rs[RS_DRAW] = 1
    rs[RS_LOCK] = LOCK_FREE
    if reaper_on:
        x = _dist(D, D_REAPDELAY, kr, 0)
        if tilt:
            lw += _lr(TL, D_REAPDELAY, x)
        tt[L + S_REAP] = P[P_REAPER_EXTRA] + x
    t_switch = INF  # when the last victim thread exited (a tilted bystander rate may switch then)

    nheap = 0
    alive = T
    mm_done = 0
    t_end = horizon
    next_check = -1  # F at which the post-victim shortcut is tried next
    _tree_init(tt, tw, L)
    if trt is not None:
        trn[0] = 0
        trn[1] = 0
        _trace(trt, tri, trn, 0.0, K_START, -1, -1, -1, 0, F, freed_mm, freed_byst, V, mf, mi, td_rate, rp_rate,
               ht, hp, nheap)  # fmt: skip

    while True:
        slot = tw[1]
        t = tt[1]
        if t > horizon:
            t_end = horizon
            break
        events += 1
        if events > max_events:
            truncated = 1
            t_end = t
            if tilt and S_BYST <= slot < S_REAP:
                bidx[slot - S_BYST] += 1  # an arrival at t_end is observed (it sets t_end): count it
            break
        if slot < T:
            # ------------------------------------------------ victim thread
            j = slot
            kw = tk[0, j]
            if tf[TF_HMIN, j] <= tf[TF_ACT, j]:
                # one of its allocations is freed (hold_us after the grant)
                off = ti[TI_HOFF, j]
                n = ti[TI_NREQ, j]
                hm = INF
                for r in range(n):
                    if hold_t[off + r] == t:
                        pg = hold_p[off + r]
                        F += pg
                        freed_hold += pg
                        ti[TI_HELD, j] -= pg
                        hold_t[off + r] = INF
                        if trt is not None:
                            _trace(trt, tri, trn, t, K_VHOLD, j, ti[TI_MM, j], -1, pg, F, freed_mm, freed_byst, V,
                                   mf, mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                    elif hold_t[off + r] < hm:
                        hm = hold_t[off + r]
                tf[TF_HMIN, j] = hm
                _tset(tt, tw, L, j, min(hm, tf[TF_ACT, j]))
                continue
            ph = ti[TI_PHASE, j]
            act = 0  # 0: nothing more; 1: try (first); 2: try (again); 3: post-pass
            if ph == PH_START:
                if ti[TI_REQ, j] >= ti[TI_NREQ, j]:
                    # exit: free what it still holds and its stack
                    held = ti[TI_HELD, j]
                    F += ti[TI_HELD, j] + stack
                    freed_exit += ti[TI_HELD, j] + stack
                    ti[TI_HELD, j] = 0
                    ti[TI_PHASE, j] = PH_DONE
                    tf[TF_ACT, j] = INF
                    tf[TF_HMIN, j] = INF
                    _tset(tt, tw, L, j, INF)
                    alive -= 1
                    if tilt:
                        if alive == 0:
                            # a stopping time: switch the windowed bystander tilts to their after-victims rate;
                            # the pending gap, Exp(brate) by memorylessness, is rescaled to Exp(rate after)
                            t_switch = t
                            for c in range(NCLS):
                                bwin[c] = bidx[c]
                                if rate_lr[c, 3] != 0.0:
                                    ta = tt[L + S_BYST + c]
                                    if ta < INF:
                                        ta = t + (ta - t) * (brate[c] / rate_lr[c, 4]) if rate_lr[c, 4] > 0.0 else INF
                                        _tset(tt, tw, L, S_BYST + c, ta)
                    v = ti[TI_MM, j]
                    mi[MI_ALIVE, v] -= 1
                    if mi[MI_ALIVE, v] == 0:
                        freed = _mm_advance(v, t, mf, mi, td_rate, rp_rate)
                        F += freed
                        freed_mm += freed
                        mi[MI_TD, v] = 1
                        mf[MF_T, v] = t
                        _tset(tt, tw, L, S_MM + v, _mm_next(v, mf, mi, td_rate, rp_rate))
                    if trt is not None:
                        _trace(trt, tri, trn, t, K_EXIT, j, v, -1, held + stack, F, freed_mm, freed_byst, V, mf, mi,
                               td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                else:
                    r = ti[TI_REQ, j]
                    ti[TI_CLS, j] = choose(class_cum, uniform(kw, 8 + 4 * r))
                    ti[TI_ORDER, j] = choose(order_cum, uniform(kw, 9 + 4 * r)) if order_cum.shape[0] > 1 else 0
                    if tilt:
                        lw += class_lr[ti[TI_CLS, j]] + order_lr[ti[TI_ORDER, j]]
                    ti[TI_ROUNDS, j] = 0
                    tf[TF_START, j] = t
                    vreq += 1
                    act = 1
                    if trt is not None:
                        _trace(trt, tri, trn, t, K_VREQ, j, ti[TI_MM, j], ti[TI_CLS, j], 1 << ti[TI_ORDER, j], F,
                               freed_mm, freed_byst, V, mf, mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
            elif ph == PH_RECLAIM:
                F += yield_
                freed_recl += yield_
                ti[TI_ROUNDS, j] += 1
                act = 2
                if trt is not None:
                    _trace(trt, tri, trn, t, K_RECLAIM, j, ti[TI_MM, j], ti[TI_CLS, j], yield_, F, freed_mm,
                           freed_byst, V, mf, mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
            elif ph == PH_LOCK:
                rs[RS_LOCK] = LOCK_FREE
                if rs[RS_WAIT] == 1:
                    rs[RS_WAIT] = 0
                    rs[RS_LOCK] = LOCK_REAPER
                    _tset(tt, tw, L, S_REAP, t)
                act = 3
            elif ph == PH_JIFFY:
                act = 3

            if act != 0:
                cls = ti[TI_CLS, j]
                k = ti[TI_ORDER, j]
                done = -1  # -1 pending, 0 failed, 1 granted
                nxt = INF
                if act == 3:
                    # victim exit after an OOM-killer pass
                    isv = ti[TI_TGRANT, j] if vtest == sem.VICTIM_TIF else pm[ti[TI_PROC, j]]
                    if isv == 1 and (ti[TI_LASTG, j] == 1 or cnomem[cls] == 1) and cnofail[cls] == 0:
                        done = 0
                    else:
                        ti[TI_ROUNDS, j] = 0
                if done == -1:
                    # ---- try. Teardown and reaping are credited to F lazily: a try
                    # that passes on the uncredited (lower) F passes on the true F
                    # too, so crediting is needed only when the try fails or the
                    # allocation could set min_free, the floor or min_grant.
                    size = 1 << k
                    own = cflags0[cls] if k == 0 else cflags1[cls]
                    hasg = (ti[TI_TGRANT, j] if scope == sem.SCOPE_THREAD else pm[ti[TI_PROC, j]]) == 1
                    hasg = hasg and cnomem[cls] == 0
                    ok, usedg, nwf = _try_req(F, k, W, own, gflags, act == 1, hasg, era, highatomic, oom_frac)
                    if not ok or F - size < min_free or F - size <= floor_ or (usedg and F - size < min_grant):
                        freed, fh, nheap = _credit_all(t, V, mf, mi, td_rate, rp_rate, ht, hp, nheap)
                        if freed + fh > 0:
                            F += freed + fh
                            freed_mm += freed
                            freed_byst += fh
                            ok, usedg, nwf = _try_req(F, k, W, own, gflags, act == 1, hasg, era, highatomic, oom_frac)
                    if nwf:
                        exhausted = 1
                    ti[TI_LASTG, j] = 1 if usedg else 0
                    if ok:
                        F -= size
                        allocated += size
                        if F < min_free:
                            min_free = F
                        if F <= floor_:
                            exhausted = 1
                        if usedg and F < min_grant:
                            min_grant = F
                        ti[TI_HELD, j] += size
                        r = ti[TI_REQ, j]
                        x = _dist(D, D_HOLD, kw, 10 + 4 * r)
                        if tilt:
                            lw += _lr(TL, D_HOLD, x)
                        he = t + x
                        hold_t[ti[TI_HOFF, j] + r] = he
                        hold_p[ti[TI_HOFF, j] + r] = size
                        if he < tf[TF_HMIN, j]:
                            tf[TF_HMIN, j] = he
                        done = 1
                        if trt is not None:
                            _trace(trt, tri, trn, t, K_VGRANT, j, ti[TI_MM, j], cls, size, F, freed_mm, freed_byst,
                                   V, mf, mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                    elif creclaim[cls] == 0:
                        done = 0
                    elif k > 3 and (act == 2 or rounds_max == 0):
                        done = 0  # costly orders: no OOM killer, fail after one round
                    elif ti[TI_ROUNDS, j] < rounds_max:
                        ti[TI_PHASE, j] = PH_RECLAIM
                        d = ti[TI_RDRAW, j]
                        ti[TI_RDRAW, j] = d + 1
                        x = _dist(D, D_RECLAIM, tk[1, j], d)
                        if tilt:
                            lw += _lr(TL, D_RECLAIM, x)
                        nxt = t + x
                    else:
                        # ---- the OOM-killer pass
                        if rs[RS_LOCK] == LOCK_FREE:
                            rs[RS_LOCK] = j
                            v = ti[TI_MM, j]
                            if mi[MI_SKIP, v] == 0:
                                # dying-task shortcut: mark_oom_victim(current)
                                if ti[TI_TGRANT, j] == 0:
                                    ti[TI_TGRANT, j] = 1
                                    if scope == sem.SCOPE_THREAD and nograntfull:
                                        full_res += 1
                                pm[ti[TI_PROC, j]] = 1
                            elif coom[cls] == sem.OOM_FULL:
                                # oom_evaluate_task aborts while any victim mm is not yet MMF_OOM_SKIP
                                nskip = 0
                                for vv in range(V):
                                    nskip += mi[MI_SKIP, vv]
                                if nskip == V:
                                    rekills += 1
                            ti[TI_PHASE, j] = PH_LOCK
                            nxt = t + lock_hold
                            if trt is not None:
                                _trace(trt, tri, trn, t, K_OOM, j, v, cls, 0, F, freed_mm, freed_byst, V, mf, mi,
                                       td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                        else:
                            ti[TI_PHASE, j] = PH_JIFFY
                            nxt = t + jiffy
                            if trt is not None:
                                _trace(trt, tri, trn, t, K_OOMBUSY, j, ti[TI_MM, j], cls, 0, F, freed_mm, freed_byst,
                                       V, mf, mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                if done >= 0:
                    w = t - tf[TF_START, j]
                    if w > max_stall:
                        max_stall = w
                    if w > stall_us:
                        stalled = 1
                    if done == 0:
                        vfail += 1
                        if trt is not None:
                            _trace(trt, tri, trn, t, K_VFAIL, j, ti[TI_MM, j], cls, 1 << k, F, freed_mm, freed_byst,
                                   V, mf, mi, td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                    r = ti[TI_REQ, j]
                    ti[TI_REQ, j] = r + 1
                    ti[TI_PHASE, j] = PH_START
                    x = _dist(D, D_GAP, kw, 11 + 4 * r)
                    if tilt:
                        lw += _lr(TL, D_GAP, x)
                    nxt = t + x
            else:
                nxt = tf[TF_ACT, j]  # exited (INF)
            tf[TF_ACT, j] = nxt
            _tset(tt, tw, L, j, min(nxt, tf[TF_HMIN, j]))
        elif slot < S_REAP:
            # ------------------------------------------------ bystander arrival
            c = slot - S_BYST
            i = bidx[c]
            k = choose(border_cum[c], uniform(kb[c], 3 * i + 1)) if border_cum[c, 0] < 1.0 else 0
            if tilt:
                lw += border_lr[c, k]
            fl = cflags0[c] if k == 0 else cflags1[c]  # bystanders' own class flags, never a grant
            size = 1 << k
            ok = watermark_ok(F, k, W, fl, era, highatomic, oom_frac)
            if not ok or F - size < min_free or F - size <= floor_:  # lazy crediting, as for victims
                freed, fh, nheap = _credit_all(t, V, mf, mi, td_rate, rp_rate, ht, hp, nheap)
                if freed + fh > 0:
                    F += freed + fh
                    freed_mm += freed
                    freed_byst += fh
                    ok = watermark_ok(F, k, W, fl, era, highatomic, oom_frac)
            if ok:
                F -= size
                allocated += size
                if F < min_free:
                    min_free = F
                if F <= floor_:
                    exhausted = 1
                if nheap >= heap_cap:
                    fh, nheap = _credit_holds(t, ht, hp, nheap)
                    F += fh
                    freed_byst += fh
                    if nheap >= heap_cap:
                        return 1
                x = _dist(bhold, c, kb[c], 3 * i + 2)
                if tilt:
                    lw += _lr(BTL, c, x)
                _heap_push(ht, hp, nheap, t + x, size)
                nheap += 1
                if trt is not None:
                    _trace(trt, tri, trn, t, K_BGRANT, -1, -1, c, size, F, freed_mm, freed_byst, V, mf, mi, td_rate,
                           rp_rate, ht, hp, nheap)  # fmt: skip
            else:
                bfail[c] += 1
                if (fl & sem.ALLOC_NO_WATERMARKS) != 0:
                    exhausted = 1
                if trt is not None:
                    _trace(trt, tri, trn, t, K_BFAIL, -1, -1, c, size, F, freed_mm, freed_byst, V, mf, mi, td_rate,
                           rp_rate, ht, hp, nheap)  # fmt: skip
            bidx[c] = i + 1
            # the arrival gaps are not weighted one by one: a tilted rate is weighted as a
            # Poisson process over the episode's end, after the loop
            mg = 1.0 / brate[c]
            if tilt:
                if t_switch <= t and rate_lr[c, 3] != 0.0:
                    mg = 1.0 / rate_lr[c, 4]
            _tset(tt, tw, L, slot, t + exponential(kb[c], 3 * (i + 1), mg))
        elif slot == S_REAP:
            # ------------------------------------------------ OOM reaper
            g0 = rs[RS_GIVEUP]
            m0 = rs[RS_MM]
            d0 = rs[RS_DRAW]
            tr, freed, ch = _reaper_event(t, rs, mi, mf, V, kr, lock_p, retries, retry_us, reaper_lock,
                                          td_rate, rp_rate)  # fmt: skip
            F += freed
            freed_mm += freed
            _tset(tt, tw, L, S_REAP, tr)
            if ch >= 0:
                _tset(tt, tw, L, S_MM + ch, _mm_next(ch, mf, mi, td_rate, rp_rate))
            if trt is not None:
                _trace_reaper(trt, tri, trn, t, g0, m0, d0, rs, ch, F, freed_mm, freed_byst, V, mf, mi, td_rate,
                              rp_rate, ht, hp, nheap)  # fmt: skip
        else:
            # ------------------------------------------------ mm pool event
            v = slot - S_MM
            freed, nx, wake, dn = _mm_event(t, v, rs, mi, mf, td_rate, rp_rate)
            F += freed
            freed_mm += freed
            mm_done += dn
            _tset(tt, tw, L, slot, nx)
            if wake >= 0.0:
                _tset(tt, tw, L, S_REAP, wake)
            if trt is not None:
                if wake >= 0.0:
                    _trace(trt, tri, trn, t, K_REAPDONE, -1, v, -1, 0, F, freed_mm, freed_byst, V, mf, mi, td_rate,
                           rp_rate, ht, hp, nheap)  # fmt: skip
                if dn == 1:
                    _trace(trt, tri, trn, t, K_MMFREED, -1, v, -1, 0, F, freed_mm, freed_byst, V, mf, mi, td_rate,
                           rp_rate, ht, hp, nheap)  # fmt: skip
        if alive == 0:
            if mm_done == V:
                t_end = t
                break
            # ---- post-victim shortcut. Only the mm pools, the reaper and the
            # bystanders remain, and the first two do not depend on F. If the
            # bystanders' requests until the end cannot take F down to any
            # watermark, to min_free or to the floor even if none were freed,
            # no outcome can change: finish the drain without them (exact).
            freed, fh, nheap = _credit_all(t, V, mf, mi, td_rate, rp_rate, ht, hp, nheap)
            F += freed + fh
            freed_mm += freed
            freed_byst += fh
            room = min(F - bmax - highatomic - W - 1, F - min_free, F - floor_ - 1)
            if F >= next_check and room >= 0:
                for v in range(V):
                    for r in range(NMI):
                        mi2[r, v] = mi[r, v]
                    for r in range(NMF):
                        mf2[r, v] = mf[r, v]
                    mf2[MF_NEXT, v] = tt[L + S_MM + v]
                for r in range(NRS):
                    rs2[r] = rs[r]
                t_drain, _ = _drain(t, tt[L + S_REAP], V, rs2, mi2, mf2, horizon, kr, lock_p, retries, retry_us,
                                    reaper_lock, td_rate, rp_rate, F, freed_mm, freed_byst, ht, hp, nheap,
                                    None, None, None)  # fmt: skip
                t_stop = min(t_drain, horizon)
                need = 0
                lw_look = 0.0
                for c in range(NCLS):
                    if brate[c] > 0.0 and need <= room:
                        ta = tt[L + S_BYST + c]
                        i = bidx[c]
                        mg = 1.0 / brate[c]
                        if tilt:
                            if rate_lr[c, 3] != 0.0:
                                mg = 1.0 / rate_lr[c, 4]  # always switched here: no victim thread is alive
                        while ta <= t_stop and need <= room:
                            k = choose(border_cum[c], uniform(kb[c], 3 * i + 1)) if border_cum[c, 0] < 1.0 else 0
                            if tilt:
                                lw_look += border_lr[c, k]
                            need += 1 << k
                            i += 1
                            ta += exponential(kb[c], 3 * i, mg)
                        bcnt[c] = i
                if need <= room:
                    if tilt:
                        # these arrivals (up to the end, t_stop) and their orders happen in the
                        # true process and decided the shortcut: weight them; their holds are
                        # never drawn and change nothing, so they carry no ratio
                        lw += lw_look
                        for c in range(NCLS):
                            if brate[c] > 0.0:
                                bidx[c] = bcnt[c]
                    for v in range(V):
                        mf[MF_NEXT, v] = tt[L + S_MM + v]
                    if trt is not None:
                        _trace(trt, tri, trn, t, K_SHORTCUT, -1, -1, -1, 0, F, freed_mm, freed_byst, V, mf, mi,
                               td_rate, rp_rate, ht, hp, nheap)  # fmt: skip
                    t_fin, freed = _drain(t, tt[L + S_REAP], V, rs, mi, mf, horizon, kr, lock_p, retries, retry_us,
                                          reaper_lock, td_rate, rp_rate, F, freed_mm, freed_byst, ht, hp, nheap,
                                          trt, tri, trn)  # fmt: skip
                    F += freed
                    freed_mm += freed
                    t_end = min(t_fin, horizon)
                    break
            if F >= next_check:
                next_check = max(F + 64, 2 * F - W, W + highatomic + bmax + 65)

    if t_end >= horizon or truncated == 1:
        stalled = 1
        for j in range(T):
            ph = ti[TI_PHASE, j]
            if ph == PH_RECLAIM or ph == PH_LOCK or ph == PH_JIFFY:
                w = t_end - tf[TF_START, j]
                if w > max_stall:
                    max_stall = w
        resolve = horizon if truncated == 0 else t_end
        freed = _advance_all(t_end, V, mf, mi, td_rate, rp_rate)
        F += freed
        freed_mm += freed
    else:
        resolve = t_end

    if tilt:
        # tilted bystander rates: the Poisson-process likelihood ratio over [0, t_end],
        # (r / r')**N * exp(-(r - r') * t_end), N = arrivals in [0, t_end]; t_end is a
        # stopping time and no outcome depends on the streams after it. A windowed tilt
        # has rate r' = brate up to the stopping time t_switch and rate_lr[c, 4] after:
        # one such factor per window.
        for c in range(NCLS):
            if rate_lr[c, 0] != 0.0:
                n1 = bidx[c]
                s1 = t_end
                if rate_lr[c, 3] != 0.0 and t_switch <= t_end:
                    n1 = bwin[c]
                    s1 = t_switch
                    n2 = bidx[c] - n1
                    if n2 > 0:
                        lw += n2 * rate_lr[c, 5]
                    lw -= rate_lr[c, 6] * (t_end - s1)
                if n1 > 0:
                    lw += n1 * rate_lr[c, 1]
                lw -= rate_lr[c, 2] * s1
        # the reaper's mmap-lock attempts: Bernoulli(lock_p) draws
        if rs[RS_NOK] > 0:
            lw += rs[RS_NOK] * lock_lr[0]
        if rs[RS_NFAIL] > 0:
            lw += rs[RS_NFAIL] * lock_lr[1]

    if trt is not None:
        _trace(trt, tri, trn, t_end, K_END, -1, -1, -1, 0, F, freed_mm, freed_byst, V, mf, mi, td_rate, rp_rate,
               ht, hp, nheap)  # fmt: skip

    out[O_EXH] = exhausted
    out[O_MINF] = min_free
    out[O_VFAIL] = vfail
    out[O_STALL] = stalled
    out[O_MAXSTALL] = max_stall
    out[O_RESOLVE] = resolve
    out[O_GAVEUP] = rs[RS_GAVEUP]
    out[O_FULLRES] = full_res
    out[O_REKILL] = rekills
    out[O_W] = W
    out[O_F0] = F0
    out[O_NTH] = T
    out[O_VREQ] = vreq
    out[O_EVENTS] = events
    out[O_FEND] = F
    out[O_ALLOC] = allocated
    out[O_FHOLD] = freed_hold
    out[O_FEXIT] = freed_exit
    out[O_FMM] = freed_mm
    out[O_FRECL] = freed_recl
    out[O_FBYST] = freed_byst
    out[O_RSS] = rss_total
    out[O_MINGRANT] = min_grant if min_grant < INF else -1.0
    out[O_TRUNC] = truncated
    for c in range(NCLS):
        out[O_BFAIL + c] = bfail[c]
    out[O_LW] = lw
    return 0


@njit
def _alloc_ws(capT, capP, V, capH, capR):
    ti = np.zeros((NTI, capT), dtype=np.int64)
    tf = np.zeros((NTF, capT), dtype=np.float64)
    tk = np.zeros((2, capT), dtype=np.uint64)
    pm = np.zeros(capP, dtype=np.int64)
    mf = np.zeros((NMF, V), dtype=np.float64)
    mi = np.zeros((NMI, V), dtype=np.int64)
    ht = np.zeros(capH, dtype=np.float64)
    hp = np.zeros(capH, dtype=np.int64)
    L = 1
    while L < capT + 1 + NCLS + V:
        L <<= 1
    tw = np.zeros(2 * L, dtype=np.int64)
    tt = np.zeros(2 * L, dtype=np.float64)
    hold_t = np.zeros(capR, dtype=np.float64)
    hold_p = np.zeros(capR, dtype=np.int64)
    kb = np.zeros(NCLS, dtype=np.uint64)
    bidx = np.zeros(NCLS, dtype=np.int64)
    bfail = np.zeros(NCLS, dtype=np.int64)
    rs = np.zeros(NRS, dtype=np.int64)
    mf2 = np.zeros((NMF, V), dtype=np.float64)
    mi2 = np.zeros((NMI, V), dtype=np.int64)
    rs2 = np.zeros(NRS, dtype=np.int64)
    bcnt = np.zeros(NCLS, dtype=np.int64)
    bwin = np.zeros(NCLS, dtype=np.int64)
    return ti, tf, tk, pm, mf, mi, ht, hp, tw, tt, hold_t, hold_p, kb, bidx, bfail, rs, mf2, mi2, rs2, bcnt, bwin


@njit(parallel=True)
def run_block(
    seed, start, n, nblocks, P, D, class_cum, order_cum, cflags0, cflags1, creclaim, coom, cnomem, cnofail,
    brate, border_cum, bhold, tilt, TL, BTL, class_lr, order_lr, border_lr, rate_lr, lock_lr, out,
):  # fmt: skip
    """Fill ``out[i]`` with the outcomes of episode ``start + i`` for ``i < n``.

    The tilt arguments (``tilt`` a flag, then the tables of
    :func:`tilt_tables`) are passed through to :func:`_episode`.

    ``prange`` runs over ``nblocks`` contiguous blocks; each block allocates
    its scratch once and grows it when an episode needs more. The result of
    an episode depends only on ``(seed, start + i)``.
    """
    V = int(P[P_VICTIMS])
    for b in prange(nblocks):
        lo = b * n // nblocks
        hi = (b + 1) * n // nblocks
        capT = 64
        capP = 4
        capH = 256
        capR = 512
        ws = _alloc_ws(capT, capP, V, capH, capR)
        for i in range(lo, hi):
            e = start + i
            T, NP = count_threads(seed, e, P, D)
            if T > capT or NP > capP:
                capT = max(capT, T)
                capP = max(capP, NP)
                ws = _alloc_ws(capT, capP, V, capH, capR)
            while True:
                st = _episode(
                    seed, e, P, D, class_cum, order_cum, cflags0, cflags1, creclaim, coom, cnomem, cnofail,
                    brate, border_cum, bhold, tilt, TL, BTL, class_lr, order_lr, border_lr, rate_lr, lock_lr,
                    ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7], ws[8], ws[9], ws[10], ws[11], ws[12],
                    ws[13], ws[14], ws[15], ws[16], ws[17], ws[18], ws[19], ws[20], None, None, None, out[i],
                )  # fmt: skip
                if st == 0:
                    break
                if st == 1:
                    capH *= 2
                else:
                    capR *= 2
                ws = _alloc_ws(capT, capP, V, capH, capR)


@njit
def trace_one(
    seed, e, P, D, class_cum, order_cum, cflags0, cflags1, creclaim, coom, cnomem, cnofail,
    brate, border_cum, bhold, tilt, TL, BTL, class_lr, order_lr, border_lr, rate_lr, lock_lr, trt, tri, trn, out,
):  # fmt: skip
    """Simulate episode ``e`` into ``out`` (one row) and trace its events.

    The same :func:`_episode` as :func:`run_block`, compiled with trace
    buffers: ``trt`` (times), ``tri`` (``n x NTR`` integer columns ``TR_*``)
    and ``trn`` (``[rows written, truncated]``); see :func:`_trace`. Used by
    :func:`depletion.trace.trace_episodes`, never on the hot path.
    """
    V = int(P[P_VICTIMS])
    T, NP = count_threads(seed, e, P, D)
    capT = max(64, T)
    capP = max(4, NP)
    capH = 256
    capR = 512
    ws = _alloc_ws(capT, capP, V, capH, capR)
    while True:
        st = _episode(
            seed, e, P, D, class_cum, order_cum, cflags0, cflags1, creclaim, coom, cnomem, cnofail,
            brate, border_cum, bhold, tilt, TL, BTL, class_lr, order_lr, border_lr, rate_lr, lock_lr,
            ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7], ws[8], ws[9], ws[10], ws[11], ws[12],
            ws[13], ws[14], ws[15], ws[16], ws[17], ws[18], ws[19], ws[20], trt, tri, trn, out,
        )  # fmt: skip
        if st == 0:
            return
        if st == 1:
            capH *= 2
        else:
            capR *= 2
        ws = _alloc_ws(capT, capP, V, capH, capR)


# ================================================================ Python side
@dataclass(frozen=True)
class Inputs:
    """Arrays the kernels take for one scenario and policy."""

    P: np.ndarray
    D: np.ndarray
    class_cum: np.ndarray
    order_cum: np.ndarray
    cflags0: np.ndarray
    cflags1: np.ndarray
    creclaim: np.ndarray
    coom: np.ndarray
    cnomem: np.ndarray
    cnofail: np.ndarray
    brate: np.ndarray
    border_cum: np.ndarray
    bhold: np.ndarray
    W: int
    #: importance sampling: the tables above are the proposal, these compare it with the nominal law
    tilt: int = 0
    TL: np.ndarray = field(default_factory=lambda: np.zeros((len(DIST_ORDER), NTL)))
    BTL: np.ndarray = field(default_factory=lambda: np.zeros((NCLS, NTL)))
    class_lr: np.ndarray = field(default_factory=lambda: np.zeros(NCLS))
    order_lr: np.ndarray = field(default_factory=lambda: np.zeros(NORD))
    border_lr: np.ndarray = field(default_factory=lambda: np.zeros((NCLS, NORD)))
    rate_lr: np.ndarray = field(default_factory=lambda: np.zeros((NCLS, NRL)))
    lock_lr: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def arrays(self) -> tuple:
        """The arrays in kernel argument order."""
        return (
            self.P, self.D, self.class_cum, self.order_cum, self.cflags0, self.cflags1, self.creclaim, self.coom,
            self.cnomem, self.cnofail, self.brate, self.border_cum, self.bhold, np.int64(self.tilt), self.TL,
            self.BTL, self.class_lr, self.order_lr, self.border_lr, self.rate_lr, self.lock_lr,
        )  # fmt: skip


def _dist_row(d: Mapping[str, Any]) -> tuple[float, float, float]:
    kind = DIST_KIND[d["dist"]]
    name = d["dist"]
    if name == "fixed":
        return (kind, float(d["value"]), 0.0)
    if name in ("exponential", "poisson", "geometric"):
        return (kind, float(d["mean"]), 0.0)
    if name == "uniform":
        return (kind, float(d["low"]), float(d["high"]))
    return (kind, float(d["median"]), float(d["sigma"]))


def _cum(p: list[float], n: int) -> np.ndarray:
    a = np.zeros(n)
    a[: len(p)] = p
    c = np.cumsum(a)
    c[-1] = 1.0
    # trailing categories with no mass keep the cumulative at 1 (never chosen)
    return c


#: parameters whose draws carry a likelihood ratio under a tilt (rows of ``D``)
TILT_DIST_ROWS = {
    "f0_frac": D_F0,
    "wake_us": D_WAKE,
    "exit_allocs": D_NREQ,
    "exit_gap_us": D_GAP,
    "hold_us": D_HOLD,
    "reclaim_round_us": D_RECLAIM,
    "reaper_delay_us": D_REAPDELAY,
}
#: columns of a row of ``rate_lr`` (one per bystander class), read by the kernel
NRL = 7


def tilt_row(nominal: Mapping[str, Any], proposal: Mapping[str, Any], key: str = "") -> np.ndarray:
    """Coefficients of ``log p(x) - log q(x)`` for one distribution (a row of ``TL``, read by :func:`_lr`).

    ``nominal`` (``p``) and ``proposal`` (``q``) are canonical distribution
    tables of the same family (:func:`depletion.config.resolve`), with the
    support of ``q`` containing that of ``p`` (:mod:`depletion.rare` checks
    both). Equal tables give the all-zero row (not tilted). The laws are
    those of the value :func:`depletion.rng.sample` returns:

    - exponential, mean m: ``log(m'/m) + x (1/m' - 1/m)``;
    - poisson, mean m (by inversion): ``(m' - m) + x log(m/m')``;
    - geometric, mean a, support 1, 2, ... (``P(x) = (1/a)(1 - 1/a)**(x-1)``,
      a point mass at 1 when a = 1): ``log(a'/a) + (x - 1) log((1 - 1/a)/(1 - 1/a'))``;
    - uniform on [l, h]: ``log((h' - l')/(h - l))`` inside [l, h], ``-inf`` outside;
    - lognormal, median m, sigma s: ``log(s'/s) - (ln x - ln m)**2/(2 s**2) + (ln x - ln m')**2/(2 s'**2)``.

    Raises
    ------
    DepletionError
        If the families differ or the family is ``fixed``.
    """
    from depletion.errors import DepletionError

    row = np.zeros(NTL)
    if dict(nominal) == dict(proposal):
        return row
    name = nominal["dist"]
    if proposal["dist"] != name or name == "fixed":
        raise DepletionError(f"{key}: cannot tilt {name!r} to {proposal['dist']!r}")
    row[0] = DIST_KIND[name]
    with np.errstate(divide="ignore"):
        if name == "exponential":
            m, m2 = nominal["mean"], proposal["mean"]
            row[1] = math.log(m2 / m)
            row[2] = 1.0 / m2 - 1.0 / m
        elif name == "poisson":
            m, m2 = nominal["mean"], proposal["mean"]
            row[1] = m2 - m
            row[2] = np.log(m) - math.log(m2)  # -inf for m = 0: only x = 0 has mass
        elif name == "geometric":
            a, a2 = nominal["mean"], proposal["mean"]
            row[1] = math.log(a2 / a)
            row[2] = np.log1p(-1.0 / a) - math.log1p(-1.0 / a2)  # -inf for a = 1: only x = 1 has mass
        elif name == "uniform":
            lo, hi, lo2, hi2 = nominal["low"], nominal["high"], proposal["low"], proposal["high"]
            row[1] = math.log((hi2 - lo2) / (hi - lo))
            row[2] = lo
            row[3] = hi
        else:
            m, s, m2, s2 = nominal["median"], nominal["sigma"], proposal["median"], proposal["sigma"]
            row[1] = math.log(s2 / s)
            row[2] = math.log(m)
            row[3] = 1.0 / (2.0 * s * s)
            row[4] = math.log(m2)
            row[5] = 1.0 / (2.0 * s2 * s2)
    return row


def _cat_lr(p_cum: np.ndarray, q_cum: np.ndarray) -> np.ndarray:
    """``log p_k - log q_k`` from the kernel's cumulative tables (0 where ``q_k = 0``: never drawn)."""
    n = q_cum.shape[0]
    p = np.diff(np.concatenate([[0.0], p_cum]))
    q = np.diff(np.concatenate([[0.0], q_cum]))
    pp = np.zeros(n)
    m = min(n, p.shape[0])
    pp[:m] = p[:m]
    out = np.zeros(n)
    with np.errstate(divide="ignore"):
        pos = q > 0
        out[pos] = np.log(pp[pos]) - np.log(q[pos])
    return out


def tilt_tables(params: Mapping[str, Any], proposal: Mapping[str, Any]) -> dict[str, Any]:
    """The kernel's tilt tables: ``log p - log q`` of the nominal ``params`` against ``proposal``.

    Returns a dict with ``tilt`` (1 if anything is tilted, else 0), ``TL``
    (rows of ``D``), ``BTL`` (bystander holds by class), ``class_lr``,
    ``order_lr``, ``border_lr`` (categorical log ratios, indexed like the
    proposal's cumulative tables), ``rate_lr``, ``lock_lr`` and ``brate``.

    ``rate_lr`` has one row per bystander class, rates per microsecond: the
    nominal rate ``r``, the proposal's rate ``a`` while a victim thread is
    alive (``bystanders.CLASS.victim_rate_per_ms`` of the proposal, else its
    ``rate_per_ms``) and ``b`` after the last one exits (the proposal's
    ``rate_per_ms``): ``(tilted, log(r/a), r - a, switches (a != b), b,
    log(r/b), r - b)``. ``brate`` is ``a`` (the kernel's starting rates).
    ``lock_lr`` is ``(log(p/q), log((1-p)/(1-q)))`` for the reaper's
    mmap-lock attempts (``reaper_lock_p``: ``p`` nominal, ``q`` proposal).

    Raises
    ------
    DepletionError
        If a parameter other than the tiltable ones differs.
    """
    from depletion.errors import DepletionError

    by_p, by_q = params["bystanders"], proposal["bystanders"]
    for k in params:
        if k != "bystanders" and k not in TILT_DIST_ROWS and k not in ("class_probs", "order_probs", "reaper_lock_p"):
            if params[k] != proposal[k]:
                raise DepletionError(f"{k}: cannot be tilted")
    TL = np.zeros((len(DIST_ORDER), NTL))
    for k, idx in TILT_DIST_ROWS.items():
        TL[idx] = tilt_row(params[k], proposal[k], k)
    BTL = np.zeros((NCLS, NTL))
    rate_lr = np.zeros((NCLS, NRL))
    brate = np.zeros(NCLS)
    border_lr = np.zeros((NCLS, NORD))

    def lograte(r: float, r2: float) -> float:
        """log(r / r2); r2 > 0 wherever arrivals can occur (0 when neither has any)."""
        if r2 <= 0:
            return 0.0
        return (math.log(r) if r > 0 else -INF) - math.log(r2)

    for ci, c in enumerate(sem.CLASSES):
        BTL[ci] = tilt_row(by_p[c]["hold_us"], by_q[c]["hold_us"], f"bystanders.{c}.hold_us")
        r, b = by_p[c]["rate_per_ms"] / 1000.0, by_q[c]["rate_per_ms"] / 1000.0
        a = by_q[c].get("victim_rate_per_ms", by_q[c]["rate_per_ms"]) / 1000.0
        brate[ci] = a
        if r != a or r != b:
            rate_lr[ci, 0] = 1.0
            rate_lr[ci, 1] = lograte(r, a)
            rate_lr[ci, 2] = r - a
            if a != b:
                rate_lr[ci, 3] = 1.0
                rate_lr[ci, 4] = b
                rate_lr[ci, 5] = lograte(r, b)
                rate_lr[ci, 6] = r - b
        border_lr[ci] = _cat_lr(_cum(by_p[c]["order_probs"], NORD), _cum(by_q[c]["order_probs"], NORD))
    lock_lr = np.zeros(2)
    p, q = float(params["reaper_lock_p"]), float(proposal["reaper_lock_p"])
    if p != q:
        with np.errstate(divide="ignore"):
            # a probability 0 under q is never drawn (rare.validate_tilt keeps q > 0 where p > 0)
            lock_lr[0] = np.log(p) - math.log(q) if q > 0 else 0.0
            lock_lr[1] = np.log1p(-p) - math.log1p(-q) if q < 1 else 0.0
    cp, cq = params["class_probs"], proposal["class_probs"]
    class_lr = _cat_lr(
        _cum([cp.get(c, 0.0) for c in sem.CLASSES], NCLS), _cum([cq.get(c, 0.0) for c in sem.CLASSES], NCLS)
    )
    op, oq = params["order_probs"], proposal["order_probs"]
    order_lr = _cat_lr(_cum(op, len(op)), _cum(oq, len(oq)))
    tilted = bool(TL[:, 0].any() or BTL[:, 0].any() or rate_lr[:, 0].any() or p != q)
    tilted = tilted or bool(np.any(class_lr != 0) or np.any(order_lr != 0) or np.any(border_lr != 0))
    return {"tilt": int(tilted), "TL": TL, "BTL": BTL, "class_lr": class_lr, "order_lr": order_lr,
            "border_lr": border_lr, "rate_lr": rate_lr, "lock_lr": lock_lr, "brate": brate}  # fmt: skip


def build_inputs(
    params: Mapping[str, Any],
    policy: str | sem.Policy,
    max_events: int = 50_000_000,
    proposal: Mapping[str, Any] | None = None,
) -> Inputs:
    """Pack resolved scenario parameters and a policy into kernel arrays.

    Parameters
    ----------
    params : mapping
        ``Scenario.params`` (already validated by :func:`depletion.config.resolve`).
    policy : str or Policy
        Policy name or parsed policy.
    max_events : int
        Safety cap on events per episode (an episode that reaches it is
        marked ``truncated`` and counted as stalled).
    proposal : mapping, optional
        Importance sampling: resolved parameters to draw from instead of
        ``params`` (only the tiltable ones may differ; build it with
        :func:`depletion.rare.proposal_params`, which checks the tilt). The
        episodes then carry ``log_weight = log p - log q`` of their draws.

    Returns
    -------
    Inputs
    """
    if proposal is not None:
        tabs = tilt_tables(params, proposal)
        return dataclasses.replace(build_inputs(proposal, policy, max_events), **tabs)
    pol = sem.parse_policy(policy) if isinstance(policy, str) else policy
    mfk = None if params["min_free_kbytes"] == "auto" else int(params["min_free_kbytes"])
    W, _, _ = sem.watermarks(params["memory_gib"], pol.era, mfk, params["watermark_scale_factor"])
    P = np.zeros(NPARAM)
    P[P_W] = W
    P[P_HIGHATOMIC] = params["highatomic_pages"]
    P[P_VICTIMS] = params["victims"]
    P[P_ANON] = params["anon_fraction"]
    P[P_INALLOC] = params["in_allocator_frac"]
    P[P_STACK] = params["stack_pages"]
    P[P_TEARDOWN] = params["teardown_pages_per_us"]
    P[P_REAPER_ON] = float(pol.reaper and params["reaper"] and params["reap_pages_per_us"] > 0)
    P[P_LOCK_P] = params["reaper_lock_p"]
    P[P_RETRY_US] = params["reaper_retry_us"]
    P[P_RETRIES] = params["reaper_retries"]
    P[P_REAP_RATE] = params["reap_pages_per_us"]
    P[P_YIELD] = params["reclaim_yield_pages"]
    P[P_ROUNDS] = params["reclaim_rounds"]
    P[P_LOCK_HOLD] = params["oom_lock_hold_us"]
    P[P_JIFFY] = params["jiffy_us"]
    P[P_FLOOR] = params["exhaustion_floor"]
    P[P_STALL] = params["stall_us"]
    P[P_HORIZON] = params["horizon_us"]
    P[P_ERA] = pol.era
    P[P_GRANT] = pol.grant_flags
    P[P_SCOPE] = pol.scope
    P[P_VTEST] = pol.victim_test
    P[P_ALL_AT_KILL] = float(pol.all_at_kill)
    P[P_REAPER_LOCK] = float(pol.reaper_takes_oom_lock)
    P[P_REAPER_EXTRA] = pol.reaper_extra_delay_us
    P[P_OOM_FRAC] = pol.oom_frac
    P[P_MAX_EVENTS] = max_events
    D = np.array([_dist_row(params[k]) for k in DIST_ORDER], dtype=np.float64)
    tabs = sem.class_tables(pol.era)
    cp = params["class_probs"]
    class_cum = _cum([cp.get(c, 0.0) for c in sem.CLASSES], NCLS)
    order_cum = _cum(params["order_probs"], len(params["order_probs"]))
    by = params["bystanders"]
    brate = np.array([by[c]["rate_per_ms"] / 1000.0 for c in sem.CLASSES])
    border_cum = np.stack([_cum(by[c]["order_probs"], NORD) for c in sem.CLASSES])
    bhold = np.array([_dist_row(by[c]["hold_us"]) for c in sem.CLASSES], dtype=np.float64)
    return Inputs(
        P, D, class_cum, order_cum, tabs["flags0"], tabs["flags1"], tabs["reclaim"], tabs["oom"],
        tabs["nomemalloc"], tabs["nofail"], brate, border_cum, bhold, W,
    )  # fmt: skip


def simulate_rows(inputs: Inputs, seed: int, start: int, n: int, nblocks: int | None = None) -> np.ndarray:
    """Outcome rows of episodes ``start .. start + n - 1`` (``n x NCOL`` float64).

    ``nblocks`` only changes how work is split over threads, never the result.
    """
    import numba

    if n <= 0:
        return np.zeros((0, NCOL))
    if nblocks is None:
        nblocks = min(n, max(1, numba.get_num_threads()) * 8)
    out = np.empty((n, NCOL), dtype=np.float64)
    run_block(np.uint64(seed), np.int64(start), np.int64(n), np.int64(nblocks), *inputs.arrays(), out)
    return out


def run_episodes(
    params: Mapping[str, Any], policy: str, episodes: int, seed: int, start: int = 0
) -> dict[str, np.ndarray]:
    """Per-episode outcome arrays for one policy (all columns of :data:`OUTCOLS`).

    Parameters
    ----------
    params : mapping
        Resolved scenario parameters (``Scenario.params``).
    policy : str
        Policy name.
    episodes : int
        Number of episodes.
    seed : int
        Seed; episode ``i`` is a pure function of ``(seed, start + i)``.
    start : int
        Index of the first episode.

    Returns
    -------
    dict of str to ndarray
    """
    rows = simulate_rows(build_inputs(params, policy), seed, start, episodes)
    return {name: rows[:, i] for i, name in enumerate(OUTCOLS)}
