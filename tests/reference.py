"""A slow, plain-Python reference implementation of the episode model.

This module re-derives MODEL.md sections 2-13 and ``docs/model-notes.md``
independently of the Numba engine (``depletion/engine.py``). It imports
nothing from the package except, in callers, the validated parameters of
``depletion.config``; the watermark arithmetic, ``min_free_kbytes``, class
flags and policy rules are written out again here. It is used only in tests:
on its own against exact answers (``tests/test_reference.py``) and against the
engine in distribution (``tests/test_agreement.py``).

Design: one episode is an event-driven simulation over a heap of events keyed
``(time, category, index, sequence)``; the categories give the tie order of
model-notes ("Ties"): threads (in index order), hold ends, bystanders, the
reaper, mm pool events. Randomness comes from ``numpy.random.Generator``
(one per episode, seeded from ``(seed, episode)``): the reference agrees with
the engine in distribution, not bit for bit.

Public API: :func:`simulate_reference`. Helpers (:func:`watermark_ok`,
:func:`min_watermark`, :func:`parse_policy`, :func:`check_conservation`) are
exposed for the tests.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

CLASSES = ("kernel", "nofs", "noio", "high", "atomic", "nomemalloc", "memalloc", "nofail")
NO_RECLAIM = frozenset({"atomic", "memalloc"})  # classes that may not reclaim: fail at once
REKILL_CLASSES = frozenset({"kernel", "high", "nomemalloc", "nofail"})  # would kill another process
COSTLY_ORDER = 3  # orders above this are costly

# allocation flag bits (only the ones the watermark check looks at)
HIGH = 1  # ALLOC_HIGH (v4.x)
HARDER = 2  # ALLOC_HARDER (v4.x)
OOM = 4  # ALLOC_OOM (v4.14, v6)
NO_WATERMARKS = 8
MIN_RESERVE = 16  # v6 ALLOC_MIN_RESERVE (__GFP_HIGH)
NON_BLOCK = 32  # v6 ALLOC_NON_BLOCK
HIGHATOMIC = 64  # v6 ALLOC_HIGHATOMIC
FRACTION = 128  # the custom grant of policy fraction:X (an ALLOC_OOM with min -= floor(X * min))
V6_RESERVES = NON_BLOCK | MIN_RESERVE | HIGHATOMIC | OOM

PAGES_PER_GIB = 262144


# ---------------------------------------------------------------------------
# Policies


@dataclass(frozen=True)
class Policy:
    """What a policy name means (MODEL.md section 5, model-notes)."""

    name: str
    era: str  # "v4.13", "v4.14" or "v6"
    scope: str  # "thread": grant iff TIF_MEMDIE; "process": grant iff process marked
    grant: int  # flags of a grant: NO_WATERMARKS, OOM or FRACTION
    frac: float = 0.5  # for FRACTION
    all_threads: bool = False  # tif_memdie_all: every killed thread gets TIF_MEMDIE at t = 0
    mmu: bool = True  # False: no OOM reaper

    @property
    def full_reserves(self) -> bool:
        return self.grant == NO_WATERMARKS


def parse_policy(name: str) -> Policy:
    """Parse a policy name: tif_memdie, tif_memdie_all, alloc_oom, nommu, v6, fraction:X."""
    if name == "tif_memdie":
        return Policy(name, "v4.13", "thread", NO_WATERMARKS)
    if name == "tif_memdie_all":
        return Policy(name, "v4.13", "thread", NO_WATERMARKS, all_threads=True)
    if name == "alloc_oom":
        return Policy(name, "v4.14", "process", OOM)
    if name == "nommu":
        return Policy(name, "v4.14", "thread", NO_WATERMARKS, mmu=False)
    if name == "v6":
        return Policy(name, "v6", "process", OOM)
    if name.startswith("fraction:"):
        x = float(name.split(":", 1)[1])
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {x}")
        return Policy(name, "v4.14", "process", FRACTION, frac=x)
    raise ValueError(f"unknown policy {name!r}")


# ---------------------------------------------------------------------------
# Watermarks (MODEL.md sections 2 and 3)


def managed_pages(params: dict) -> int:
    """M = memory_gib * 262144 (floored to whole pages)."""
    return int(math.floor(params["memory_gib"] * PAGES_PER_GIB))


def min_free_kbytes(params: dict, era: str) -> int:
    """min_free_kbytes: the parameter, or isqrt(M_kbytes * 16) clamped by era."""
    v = params["min_free_kbytes"]
    if v != "auto":
        return int(v)
    kb = managed_pages(params) * 4
    hi = 262144 if era == "v6" else 65536
    return min(max(math.isqrt(kb * 16), 128), hi)


def min_watermark(params: dict, era: str) -> int:
    """W = min_free_kbytes // 4, the min watermark in pages."""
    return min_free_kbytes(params, era) // 4


def watermarks(params: dict, era: str) -> tuple[int, int, int]:
    """(min, low, high) watermarks in pages; only min is used by the model."""
    w = min_watermark(params, era)
    d = max(w // 4, managed_pages(params) * params["watermark_scale_factor"] // 10000)
    return w, w + d, w + 2 * d


def class_flags(cls: str, era: str, order: int = 0) -> int:
    """Allocation flags of a request of class ``cls`` without any reserve grant (MODEL.md section 4)."""
    if cls == "memalloc":
        return NO_WATERMARKS
    if era == "v6":
        if cls == "high":
            return MIN_RESERVE
        if cls == "atomic":
            return MIN_RESERVE | NON_BLOCK | (HIGHATOMIC if order > 0 else 0)
        return 0
    if cls == "high":
        return HIGH
    if cls == "atomic":
        return HIGH | HARDER
    return 0  # kernel, nofs, noio, nomemalloc, nofail: ALLOC_WMARK_MIN


def watermark_ok(free_pages: int, order: int, flags: int, era: str, w: int, highatomic: int = 0,
                 frac: float = 0.5) -> bool:
    """The watermark check at the min watermark ``w`` (MODEL.md section 3), integer arithmetic.

    ``__zone_watermark_ok``, plus the order-0 fast path of v4.x ``zone_watermark_fast``
    (model-notes, "Departures"): an order-0 request also passes when ``F > w`` and
    ``F > highatomic`` (the free-list search then finds a page outside the highatomic blocks).
    """
    size = 1 << order
    if flags & NO_WATERMARKS:
        return free_pages >= size
    if order == 0 and era in ("v4.13", "v4.14") and free_pages > w and free_pages > highatomic:
        return True
    free = free_pages - (size - 1)
    mn = w
    if era == "v6":
        if flags & V6_RESERVES:
            if flags & MIN_RESERVE:
                mn -= mn // 2
                if flags & NON_BLOCK:
                    mn -= mn // 4
            if flags & OOM:
                mn -= mn // 2
        else:
            free -= highatomic
    elif era in ("v4.13", "v4.14"):
        if flags & HIGH:
            mn -= mn // 2
        if flags & FRACTION:
            # fraction:X is "as alloc_oom" (ALLOC_OOM counts as alloc_harder) with min -= floor(X * min)
            mn -= math.floor(frac * mn)
        elif (flags & HARDER) or (era == "v4.14" and flags & OOM):
            mn -= mn // 2 if flags & OOM else mn // 4
        else:
            free -= highatomic
    else:
        raise ValueError(era)
    return free > mn


def grant_floor(w: int, policy: Policy) -> int:
    """Lowest F an allocation made with a partial grant may leave (MODEL.md section 11)."""
    if policy.grant == OOM:
        return w - w // 2
    if policy.grant == FRACTION:
        return w - math.floor(policy.frac * w)
    return 0


# ---------------------------------------------------------------------------
# Distributions


def sample(d: dict, rng: np.random.Generator) -> float:
    """One draw from a canonical distribution table."""
    kind = d["dist"]
    if kind == "fixed":
        return float(d["value"])
    if kind == "exponential":
        return float(rng.exponential(d["mean"])) if d["mean"] > 0 else 0.0
    if kind == "poisson":
        return float(rng.poisson(d["mean"]))
    if kind == "geometric":
        return float(rng.geometric(1.0 / d["mean"]))
    if kind == "uniform":
        return float(rng.uniform(d["low"], d["high"]))
    if kind == "lognormal":
        return float(d["median"] * math.exp(d["sigma"] * rng.standard_normal()))
    raise ValueError(kind)


def sample_int(d: dict, rng: np.random.Generator) -> int:
    """A draw of an integer parameter (threads, mm_sharers, rss_pages, exit_allocs), rounded half up."""
    return round_half_up(sample(d, rng))


def round_half_up(x: float) -> int:
    """floor(x + 0.5): the rounding of F(0) and of integer parameters (halves go up)."""
    return int(math.floor(x + 0.5))


def choose(probs: list[float], rng: np.random.Generator) -> int:
    """Index drawn with the given probabilities."""
    u = rng.random()
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if u < acc:
            return i
    for i in range(len(probs) - 1, -1, -1):  # rounding of the sum: last positive entry
        if probs[i] > 0:
            return i
    raise ValueError("no positive probability")


# ---------------------------------------------------------------------------
# Conservation self-check


def check_conservation(rec: dict) -> None:
    """Raise AssertionError unless one episode's page accounting is exact.

    ``rec`` keys: F0, F_end, allocated, freed (all sources), freed_by_source (dict),
    min_F (lowest F ever seen), mm_rss, mm_freed (lists), thread_alloc,
    thread_freed (lists), stack_pages.
    """
    assert rec["F_end"] == rec["F0"] - rec["allocated"] + rec["freed"], (
        f"conservation: F_end={rec['F_end']} != F0={rec['F0']} - {rec['allocated']} + {rec['freed']}")
    assert sum(rec["freed_by_source"].values()) == rec["freed"], "freed pages without a source"
    assert rec["min_F"] >= 0, f"F went negative: {rec['min_F']}"
    assert rec["F_end"] >= 0, "F_end negative"
    for rss, fr in zip(rec["mm_rss"], rec["mm_freed"], strict=True):
        assert 0 <= fr <= rss, f"mm freed {fr} pages of rss {rss}"
    for a, f in zip(rec["thread_alloc"], rec["thread_freed"], strict=True):
        assert 0 <= f <= a + rec["stack_pages"], f"thread freed {f} > held {a} + stack"


# ---------------------------------------------------------------------------
# One episode

# event categories, in tie order
C_THREAD, C_HOLD, C_BYSTANDER, C_REAPER, C_POOL = range(5)


@dataclass(eq=False)
class _Proc:
    mm: int
    marked: bool = False
    threads: list = field(default_factory=list)


@dataclass(eq=False)
class _Thread:
    idx: int
    proc: _Proc
    mm: int
    n_req: int
    tif: bool = False  # TIF_MEMDIE
    done: int = 0  # requests completed
    exited: bool = False
    holds: dict = field(default_factory=dict)  # hold id -> pages
    alloc_pages: int = 0
    freed_pages: int = 0
    # current request
    in_req: bool = False
    cls: str = ""
    order: int = 0
    start: float = 0.0
    rounds: int = 0
    last_grant: bool = False


@dataclass(eq=False)
class _MM:
    idx: int
    rss: int
    reap_total: int
    other_total: int
    other_left: float
    reap_left: float
    cred_other: int = 0
    cred_reap: int = 0
    alive: int = 0  # threads still running
    teardown_on: bool = False
    reaper_on: bool = False
    skip: bool = False  # MMF_OOM_SKIP
    freed: bool = False  # both pools empty
    t_last: float = 0.0
    version: int = 0


class _Episode:
    """One OOM episode. Call :meth:`run`, then read the outcome attributes."""

    def __init__(self, p: dict, pol: Policy, rng: np.random.Generator):
        self.p, self.pol, self.rng = p, pol, rng
        self.era = pol.era
        self.W = min_watermark(p, self.era)
        self.ha = int(p["highatomic_pages"])
        self.floor = int(p["exhaustion_floor"])
        self.horizon = float(p["horizon_us"])
        self.grant_floor = grant_floor(self.W, pol)
        self.class_names = list(p["class_probs"].keys())
        self.class_p = [p["class_probs"][c] for c in self.class_names]
        self.order_p = list(p["order_probs"])
        self.td_rate = float(p["teardown_pages_per_us"])
        self.reap_rate = float(p["reap_pages_per_us"])
        self.heap: list = []
        self.seq = 0
        self.hold_seq = 0
        self.holds: dict[int, tuple] = {}  # hold id -> (thread or None, pages)
        # outcomes
        self.exhausted = False
        self.victim_failures = 0
        self.max_stall = 0.0
        self.stalled = False
        self.reaper_gave_up = False
        self.full_reserve = 0
        self.rekills = 0
        self.victim_requests = 0
        self.byst_fail = {c: 0 for c in CLASSES}
        self.min_grant_F: int | None = None  # lowest F after an allocation with a partial grant
        # accounting
        self.allocated = 0
        self.freed_src = {"hold": 0, "exit": 0, "mm": 0, "reclaim": 0, "bystander": 0}
        self.min_F_seen = 0
        self.lock: object = None  # None, a _Thread, or "reaper"
        self.done_t: float | None = None

    # -- event plumbing ------------------------------------------------------
    def push(self, t: float, cat: int, idx: int, kind: str, data=None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, cat, idx, self.seq, kind, data))

    # -- setup ---------------------------------------------------------------
    def setup(self) -> None:
        p, rng, pol = self.p, self.rng, self.pol
        f0 = sample(p["f0_frac"], rng)
        self.F0 = round_half_up(f0 * self.W)
        self.F = self.F0
        self.min_free = self.F0
        self.min_F_seen = self.F0
        if self.F0 <= self.floor:
            self.exhausted = True
        self.procs: list[_Proc] = []
        self.threads: list[_Thread] = []
        self.mms: list[_MM] = []
        victims = int(p["victims"])
        for v in range(victims):
            sharers = sample_int(p["mm_sharers"], rng)
            rss = sample_int(p["rss_pages"], rng)
            reap = int(math.floor(p["anon_fraction"] * rss))
            mm = _MM(v, rss, reap, rss - reap, float(rss - reap), float(reap))
            self.mms.append(mm)
            for s in range(1 + sharers):
                proc = _Proc(v)
                self.procs.append(proc)
                nthr = max(1, sample_int(p["threads"], rng))  # a process has at least one thread
                for _ in range(nthr):
                    mid = rng.random() < p["in_allocator_frac"]
                    n = sample_int(p["exit_allocs"], rng)
                    if mid:
                        n = max(n, 1)
                    th = _Thread(len(self.threads), proc, v, n)
                    proc.threads.append(th)
                    self.threads.append(th)
                    mm.alive += 1
                    if mid:
                        self.push(0.0, C_THREAD, th.idx, "start")
                    else:
                        self.push(sample(p["wake_us"], rng), C_THREAD, th.idx, "wake")
                # marking at kill time
                if pol.all_threads:
                    proc.marked = True
                    for th in proc.threads:
                        self.set_tif(th)
                elif s == 0 or victims > 1:
                    proc.marked = True
                    if proc.threads:
                        self.set_tif(proc.threads[0])
        # bystanders
        for ci, c in enumerate(CLASSES):
            b = p["bystanders"][c]
            if b["rate_per_ms"] > 0:
                self.push(rng.exponential(1000.0 / b["rate_per_ms"]), C_BYSTANDER, ci, "byst")
        # reaper
        self.reaper_exists = pol.mmu and bool(p["reaper"]) and self.reap_rate > 0
        self.reaper_takes_lock = self.era != "v6"
        self.r_mm = 0
        self.r_attempts = [0] * len(self.mms)
        self.r_state = "off"
        if self.reaper_exists:
            delay = sample(p["reaper_delay_us"], rng) + (2_000_000.0 if self.era == "v6" else 0.0)
            self.r_state = "delay"
            self.push(delay, C_REAPER, 0, "reaper")

    def set_tif(self, th: _Thread) -> None:
        if not th.tif:
            th.tif = True
            if self.pol.full_reserves:
                self.full_reserve += 1

    # -- pages ---------------------------------------------------------------
    def take(self, pages: int) -> None:
        self.F -= pages
        self.allocated += pages
        assert self.F >= 0, "F negative"
        if self.F < self.min_free:
            self.min_free = self.F
            self.min_F_seen = self.F
        if self.F <= self.floor:
            self.exhausted = True

    def give(self, pages: int, src: str) -> None:
        self.F += pages
        self.freed_src[src] += pages

    def advance_pools(self, t: float) -> None:
        for mm in self.mms:
            self.advance_mm(mm, t)

    def advance_mm(self, mm: _MM, t: float) -> None:
        dt = t - mm.t_last
        if dt <= 0:
            return
        mm.t_last = t
        T = self.td_rate if mm.teardown_on else 0.0
        R = self.reap_rate if mm.reaper_on else 0.0
        if T == 0.0 and R == 0.0:
            return
        to_reap = R * dt
        if T > 0.0:
            if mm.other_left > 0.0:
                need = mm.other_left / T
                if need >= dt:
                    mm.other_left = max(0.0, mm.other_left - T * dt)
                else:
                    mm.other_left = 0.0
                    to_reap += T * (dt - need)
            else:
                to_reap += T * dt
        mm.reap_left = max(0.0, mm.reap_left - to_reap)
        self.credit(mm)

    def credit(self, mm: _MM) -> None:
        """Credit the integer part of each pool's continuous freed amount to F."""
        co = mm.other_total if mm.other_left <= 0.0 else int(math.floor(mm.other_total - mm.other_left))
        cr = mm.reap_total if mm.reap_left <= 0.0 else int(math.floor(mm.reap_total - mm.reap_left))
        co, cr = max(co, mm.cred_other), max(cr, mm.cred_reap)
        d = (co - mm.cred_other) + (cr - mm.cred_reap)
        mm.cred_other, mm.cred_reap = co, cr
        if d:
            self.give(d, "mm")

    def snap(self, mm: _MM) -> None:
        eps = 1e-9 * max(1.0, float(mm.rss))
        if 0.0 < mm.other_left < eps:
            mm.other_left = 0.0
        if 0.0 < mm.reap_left < eps:
            mm.reap_left = 0.0
        self.credit(mm)

    def schedule_mm(self, mm: _MM, t: float) -> None:
        """Schedule the next pool-empty event of ``mm`` (invalidating earlier ones)."""
        mm.version += 1
        T = self.td_rate if mm.teardown_on else 0.0
        R = self.reap_rate if mm.reaper_on else 0.0
        cand = math.inf
        if T > 0.0 and mm.other_left > 0.0:
            cand = t + mm.other_left / T
        rate_r = R + (T if (T > 0.0 and mm.other_left <= 0.0) else 0.0)
        if rate_r > 0.0 and mm.reap_left > 0.0:
            cand = min(cand, t + mm.reap_left / rate_r)
        if cand < math.inf:
            self.push(cand, C_POOL, mm.idx, "pool", mm.version)

    def mm_changed(self, mm: _MM, t: float) -> None:
        """React to a pool state change of ``mm`` at time t."""
        self.snap(mm)
        if mm.reap_left <= 0.0 and mm.reaper_on:
            # the reaper has reaped everything reapable: MMF_OOM_SKIP, move on (lock kept/handed on)
            mm.reaper_on = False
            mm.skip = True
            self.r_state = "next"
            self.reaper_step(t)
        if mm.other_left <= 0.0 and mm.reap_left <= 0.0 and not mm.freed:
            mm.freed = True
            mm.skip = True
            mm.teardown_on = False
        self.schedule_mm(mm, t)

    # -- oom_lock ------------------------------------------------------------
    def release_lock(self, t: float) -> None:
        self.lock = None
        if self.r_state == "waiting":
            self.lock = "reaper"
            self.r_state = "handed"
            self.push(t, C_REAPER, 0, "reaper")

    # -- reaper --------------------------------------------------------------
    def reaper_step(self, t: float) -> None:
        p, rng = self.p, self.rng
        while True:
            while self.r_mm < len(self.mms) and (self.mms[self.r_mm].freed or self.mms[self.r_mm].skip):
                self.r_mm += 1
            if self.r_mm >= len(self.mms):
                if self.lock == "reaper":
                    self.release_lock(t)
                self.r_state = "done"
                return
            mm = self.mms[self.r_mm]
            if self.r_attempts[self.r_mm] >= p["reaper_retries"]:
                # as oom_reap_task: the sleep after the last failed attempt comes first, then give up
                if self.lock == "reaper":
                    self.release_lock(t)
                self.reaper_gave_up = True
                mm.skip = True
                continue
            if self.reaper_takes_lock and self.lock != "reaper":
                if self.lock is None:
                    self.lock = "reaper"
                else:
                    self.r_state = "waiting"
                    return
            if rng.random() < p["reaper_lock_p"]:
                if mm.reap_left <= 0.0:
                    mm.skip = True  # nothing to reap
                    continue
                mm.reaper_on = True
                self.r_state = "reaping"
                self.schedule_mm(mm, t)
                return
            self.r_attempts[self.r_mm] += 1
            if self.lock == "reaper":
                self.lock = None  # no one can be waiting: only the reaper blocks on it
            self.r_state = "sleeping"
            self.push(t + p["reaper_retry_us"], C_REAPER, 0, "reaper")
            return

    # -- threads -------------------------------------------------------------
    def holds_grant(self, th: _Thread) -> bool:
        return th.tif if self.pol.scope == "thread" else th.proc.marked

    def is_victim(self, th: _Thread) -> bool:
        return th.tif if self.era == "v4.13" else th.proc.marked

    def mark(self, th: _Thread) -> None:
        """mark_oom_victim(current), from the dying-task shortcut."""
        self.set_tif(th)
        th.proc.marked = True

    def attempt(self, th: _Thread, t: float, flags: int, with_grant: bool) -> bool:
        ok = watermark_ok(self.F, th.order, flags, self.era, self.W, self.ha, self.pol.frac)
        if not ok:
            if flags & NO_WATERMARKS:
                self.exhausted = True
            return False
        size = 1 << th.order
        self.take(size)
        th.alloc_pages += size
        if with_grant and self.pol.grant in (OOM, FRACTION):
            if self.min_grant_F is None or self.F < self.min_grant_F:
                self.min_grant_F = self.F
        self.hold_seq += 1
        hid = self.hold_seq
        th.holds[hid] = size
        self.holds[hid] = (th, size)
        self.push(t + sample(self.p["hold_us"], self.rng), C_HOLD, hid, "hold", hid)
        return True

    def start_request(self, th: _Thread, t: float) -> None:
        th.in_req = True
        th.cls = self.class_names[choose(self.class_p, self.rng)]
        th.order = choose(self.order_p, self.rng)
        th.start = t
        th.rounds = 0
        self.victim_requests += 1
        own = class_flags(th.cls, self.era, th.order)
        if self.attempt(th, t, own, False):
            th.last_grant = False
            self.complete(th, t, False)
            return
        if self.holds_grant(th) and th.cls != "nomemalloc":
            th.last_grant = True
            if self.attempt(th, t, self.pol.grant, True):
                self.complete(th, t, False)
                return
        else:
            th.last_grant = False
        self.failed_try(th, t)

    def retry(self, th: _Thread, t: float) -> None:
        use = self.holds_grant(th) and th.cls != "nomemalloc"
        flags = self.pol.grant if use else class_flags(th.cls, self.era, th.order)
        th.last_grant = use
        if self.attempt(th, t, flags, use):
            self.complete(th, t, False)
        elif th.order > COSTLY_ORDER:
            self.complete(th, t, True)  # costly orders never reach the OOM killer
        else:
            self.failed_try(th, t)

    def failed_try(self, th: _Thread, t: float) -> None:
        rr = int(self.p["reclaim_rounds"])
        if th.cls in NO_RECLAIM:
            self.complete(th, t, True)
        elif th.order > COSTLY_ORDER and rr == 0:
            self.complete(th, t, True)
        elif th.rounds < rr:
            self.push(t + sample(self.p["reclaim_round_us"], self.rng), C_THREAD, th.idx, "round")
        else:
            self.oom_pass(th, t)

    def round_end(self, th: _Thread, t: float) -> None:
        y = int(self.p["reclaim_yield_pages"])
        if y:
            self.give(y, "reclaim")
        th.rounds += 1
        # __alloc_pages_direct_reclaim tries again after reclaiming; a costly order that still
        # fails then gives up (retry() fails it) instead of going on to the OOM killer
        self.retry(th, t)

    def oom_pass(self, th: _Thread, t: float) -> None:
        if self.lock is None:
            self.lock = th
            if not self.mms[th.mm].skip:
                self.mark(th)  # the dying-task shortcut
            elif th.cls in REKILL_CLASSES and all(mm.skip for mm in self.mms):
                # oom_evaluate_task aborts the scan while some victim mm is not yet MMF_OOM_SKIP
                self.rekills += 1
            self.push(t + self.p["oom_lock_hold_us"], C_THREAD, th.idx, "oom", True)
        else:
            self.push(t + self.p["jiffy_us"], C_THREAD, th.idx, "oom", False)

    def oom_end(self, th: _Thread, t: float, release: bool) -> None:
        if release:
            assert self.lock is th
            self.release_lock(t)
        if self.is_victim(th) and (th.last_grant or th.cls == "nomemalloc") and th.cls != "nofail":
            self.complete(th, t, True)
        else:
            th.rounds = 0
            self.retry(th, t)

    def complete(self, th: _Thread, t: float, failed: bool) -> None:
        wait = t - th.start
        self.max_stall = max(self.max_stall, wait)
        if wait > self.p["stall_us"]:
            self.stalled = True
        if failed:
            self.victim_failures += 1
        th.in_req = False
        th.done += 1
        self.push(t + sample(self.p["exit_gap_us"], self.rng), C_THREAD, th.idx, "gap")

    def thread_exit(self, th: _Thread, t: float) -> None:
        pages = sum(th.holds.values()) + int(self.p["stack_pages"])
        for hid in th.holds:
            del self.holds[hid]
        th.holds.clear()
        th.freed_pages += pages
        self.give(pages, "exit")
        th.exited = True
        mm = self.mms[th.mm]
        mm.alive -= 1
        if mm.alive == 0 and not mm.freed:
            if self.td_rate > 0.0:
                mm.teardown_on = True
            self.mm_changed(mm, t)

    def thread_event(self, th: _Thread, t: float, kind: str, data) -> None:
        if kind == "start":
            self.start_request(th, t)
        elif kind == "wake":
            self.push(t + sample(self.p["exit_gap_us"], self.rng), C_THREAD, th.idx, "gap")
        elif kind == "gap":
            if th.done < th.n_req:
                self.start_request(th, t)
            else:
                self.thread_exit(th, t)
        elif kind == "round":
            self.round_end(th, t)
        elif kind == "oom":
            self.oom_end(th, t, data)
        else:
            raise AssertionError(kind)

    # -- bystanders ----------------------------------------------------------
    def bystander(self, ci: int, t: float) -> None:
        c = CLASSES[ci]
        b = self.p["bystanders"][c]
        k = choose(b["order_probs"], self.rng)
        flags = class_flags(c, self.era, k)
        if watermark_ok(self.F, k, flags, self.era, self.W, self.ha):
            size = 1 << k
            self.take(size)
            self.hold_seq += 1
            self.holds[self.hold_seq] = (None, size)
            self.push(t + sample(b["hold_us"], self.rng), C_HOLD, self.hold_seq, "hold", self.hold_seq)
        else:
            self.byst_fail[c] += 1
            if flags & NO_WATERMARKS:
                self.exhausted = True
        self.push(t + self.rng.exponential(1000.0 / b["rate_per_ms"]), C_BYSTANDER, ci, "byst")

    def hold_end(self, hid: int) -> None:
        h = self.holds.pop(hid, None)
        if h is None:
            return  # freed at the thread's exit already
        th, size = h
        if th is None:
            self.give(size, "bystander")
        else:
            del th.holds[hid]
            th.freed_pages += size
            self.give(size, "hold")

    # -- main loop -----------------------------------------------------------
    def finished(self) -> bool:
        return all(th.exited for th in self.threads) and all(mm.freed for mm in self.mms)

    def run(self, max_events: int = 5_000_000) -> None:
        self.setup()
        n = 0
        while self.heap:
            t, cat, idx, _, kind, data = heapq.heappop(self.heap)
            if t >= self.horizon:
                break
            n += 1
            if n > max_events:
                raise RuntimeError("reference: too many events (a zero-time loop?)")
            self.advance_pools(t)
            if cat == C_THREAD:
                self.thread_event(self.threads[idx], t, kind, data)
            elif cat == C_HOLD:
                self.hold_end(data)
            elif cat == C_BYSTANDER:
                self.bystander(idx, t)
            elif cat == C_REAPER:
                if self.r_state in ("delay", "sleeping", "handed"):
                    self.reaper_step(t)
            elif cat == C_POOL:
                mm = self.mms[idx]
                if data == mm.version:
                    self.mm_changed(mm, t)
            if (cat == C_THREAD or cat == C_POOL) and self.finished():
                self.done_t = t
                break
        if self.done_t is None:
            self.advance_pools(self.horizon)
            self.stalled = True
            for th in self.threads:
                if th.in_req:
                    self.max_stall = max(self.max_stall, self.horizon - th.start)
            self.resolve = self.horizon
        else:
            self.resolve = self.done_t
        self.check()

    def check(self) -> None:
        mm_freed = [mm.cred_other + mm.cred_reap for mm in self.mms]
        for mm, fr in zip(self.mms, mm_freed, strict=True):
            if mm.freed:
                assert fr == mm.rss, "fully freed mm did not free its rss"
        check_conservation({
            "F0": self.F0, "F_end": self.F, "allocated": self.allocated,
            "freed": self.F - self.F0 + self.allocated, "freed_by_source": self.freed_src,
            "min_F": self.min_F_seen, "mm_rss": [mm.rss for mm in self.mms], "mm_freed": mm_freed,
            "thread_alloc": [th.alloc_pages for th in self.threads],
            "thread_freed": [th.freed_pages for th in self.threads],
            "stack_pages": int(self.p["stack_pages"]),
        })
        assert self.min_free == min(self.F0, self.min_F_seen)
        if self.min_grant_F is not None:
            assert self.min_grant_F >= self.grant_floor, "a partial grant went below its floor"


# ---------------------------------------------------------------------------
# Public entry point

OUTCOME_KEYS = ("exhausted", "min_free", "victim_failures", "stalled", "max_stall_us", "resolve_us",
                "reaper_gave_up", "full_reserve_threads", "oom_rekills", "W", "F0", "n_threads",
                "victim_requests")
FLOAT_KEYS = frozenset({"max_stall_us", "resolve_us"})


def simulate_reference(params: dict, policy: str, episodes: int, seed: int,
                       diagnostics: bool = False) -> dict[str, np.ndarray]:
    """Simulate ``episodes`` OOM episodes with the plain-Python reference.

    Parameters
    ----------
    params : dict
        Canonical scenario parameters (``depletion.config.load_scenario(...).params``).
    policy : str
        tif_memdie, tif_memdie_all, alloc_oom, nommu, v6 or fraction:X.
    episodes : int
        Number of episodes.
    seed : int
        Episode ``i`` draws from ``numpy.random.default_rng([seed, i])``.
    diagnostics : bool
        Also return ``diag.*`` keys: ``diag.min_grant_F`` (lowest F left by an
        allocation made with a partial grant, -1 if none), ``diag.grant_floor``,
        ``diag.allocated``, ``diag.freed``, ``diag.F_end``.

    Returns
    -------
    dict of numpy arrays of length ``episodes`` (keys in ``OUTCOME_KEYS`` and
    ``bystander_failures.<class>``).
    """
    pol = parse_policy(policy)
    out: dict[str, list] = {k: [] for k in OUTCOME_KEYS}
    for c in CLASSES:
        out[f"bystander_failures.{c}"] = []
    diag_keys = ("diag.min_grant_F", "diag.grant_floor", "diag.allocated", "diag.freed", "diag.F_end")
    if diagnostics:
        for k in diag_keys:
            out[k] = []
    for i in range(episodes):
        ep = _Episode(params, pol, np.random.default_rng([seed, i]))
        ep.run()
        vals = {
            "exhausted": int(ep.exhausted), "min_free": ep.min_free, "victim_failures": ep.victim_failures,
            "stalled": int(ep.stalled), "max_stall_us": ep.max_stall, "resolve_us": ep.resolve,
            "reaper_gave_up": int(ep.reaper_gave_up), "full_reserve_threads": ep.full_reserve,
            "oom_rekills": ep.rekills, "W": ep.W, "F0": ep.F0, "n_threads": len(ep.threads),
            "victim_requests": ep.victim_requests,
        }
        for k, v in vals.items():
            out[k].append(v)
        for c in CLASSES:
            out[f"bystander_failures.{c}"].append(ep.byst_fail[c])
        if diagnostics:
            out["diag.min_grant_F"].append(-1 if ep.min_grant_F is None else ep.min_grant_F)
            out["diag.grant_floor"].append(ep.grant_floor)
            out["diag.allocated"].append(ep.allocated)
            out["diag.freed"].append(sum(ep.freed_src.values()))
            out["diag.F_end"].append(ep.F)
    res = {}
    for k, v in out.items():
        res[k] = np.asarray(v, dtype=np.float64 if k in FLOAT_KEYS else np.int64)
    return res
