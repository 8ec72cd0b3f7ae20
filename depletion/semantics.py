"""Kernel reserve semantics: allocation flags, watermark checks, classes, policies.

Each rule is a small pure function or table, tested on its own in
``tests/test_semantics.py`` against cases derived from ``mm/page_alloc.c``
and ``mm/oom_kill.c`` of each era. The engine calls :func:`watermark_ok`
and receives the class and policy tables as integer arrays built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --- allocation flags (model bits, not the kernel's numeric values) --------
ALLOC_WMARK_MIN = 0  # plain watermark check at min
ALLOC_HIGH = 1  # __GFP_HIGH (v4.x ALLOC_HIGH)
ALLOC_HARDER = 2  # v4.x ALLOC_HARDER
ALLOC_OOM = 4  # v4.14+ ALLOC_OOM
ALLOC_NO_WATERMARKS = 8
ALLOC_MIN_RESERVE = 16  # v6 ALLOC_MIN_RESERVE (__GFP_HIGH)
ALLOC_NON_BLOCK = 32  # v6 ALLOC_NON_BLOCK (!__GFP_DIRECT_RECLAIM)
ALLOC_HIGHATOMIC = 64  # v6 ALLOC_HIGHATOMIC
ALLOC_RESERVES_V6 = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

# --- eras -----------------------------------------------------------------
ERA_V4_13 = 0
ERA_V4_14 = 1
ERA_V6 = 2
ERAS = {"v4.13": ERA_V4_13, "v4.14": ERA_V4_14, "v6": ERA_V6}

# --- allocation classes (MODEL.md section 4) -------------------------------
CLASSES = ("kernel", "nofs", "noio", "high", "atomic", "nomemalloc", "memalloc", "nofail")
C_KERNEL, C_NOFS, C_NOIO, C_HIGH, C_ATOMIC, C_NOMEMALLOC, C_MEMALLOC, C_NOFAIL = range(8)
N_CLASSES = len(CLASSES)

#: how far a class goes in the slow path towards the OOM killer
OOM_NONE = 0  # never reaches it (may not reclaim)
OOM_SHORTCUT = 1  # reaches out_of_memory() only for the dying-task shortcut (!__GFP_FS)
OOM_FULL = 2  # would kill another process


@dataclass(frozen=True)
class ClassRule:
    """How one allocation class behaves in the slow path."""

    may_reclaim: bool
    oom: int
    nomemalloc: bool = False
    nofail: bool = False


CLASS_RULES: dict[str, ClassRule] = {
    "kernel": ClassRule(True, OOM_FULL),
    "nofs": ClassRule(True, OOM_SHORTCUT),
    "noio": ClassRule(True, OOM_SHORTCUT),
    "high": ClassRule(True, OOM_FULL),
    "atomic": ClassRule(False, OOM_NONE),
    "nomemalloc": ClassRule(True, OOM_FULL, nomemalloc=True),
    "memalloc": ClassRule(False, OOM_NONE),
    "nofail": ClassRule(True, OOM_FULL, nofail=True),
}


def class_flags(cls: str, era: int, order: int = 0) -> int:
    """Alloc flags of a class with no reserve grant (``gfp_to_alloc_flags``).

    Parameters
    ----------
    cls : str
        One of :data:`CLASSES`.
    era : int
        :data:`ERA_V4_13`, :data:`ERA_V4_14` or :data:`ERA_V6`.
    order : int
        Request order; in v6 a non-blocking order > 0 request also gets
        ``ALLOC_HIGHATOMIC`` (which only matters for the highatomic term).

    Returns
    -------
    int
        Bitwise OR of the ``ALLOC_*`` model flags.
    """
    if cls not in CLASS_RULES:
        raise ValueError(f"unknown class {cls!r}; allowed: {', '.join(CLASSES)}")
    if cls == "memalloc":
        # PF_MEMALLOC: __gfp_pfmemalloc_flags returns ALLOC_NO_WATERMARKS
        return ALLOC_NO_WATERMARKS
    if cls == "high":
        return ALLOC_MIN_RESERVE if era == ERA_V6 else ALLOC_HIGH
    if cls == "atomic":
        if era == ERA_V6:
            f = ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK
            if order > 0:
                f |= ALLOC_HIGHATOMIC
            return f
        return ALLOC_HIGH | ALLOC_HARDER
    return ALLOC_WMARK_MIN


def watermark_ok(free: int, order: int, wmin: int, flags: int, era: int, highatomic: int, oom_frac: float) -> bool:
    """The zone watermark check for one request (MODEL.md section 3).

    Parameters
    ----------
    free : int
        Free pages ``F`` of the zone.
    order : int
        Request order ``k``; the request takes ``2**k`` pages.
    wmin : int
        The ``min`` watermark ``W`` in pages.
    flags : int
        ``ALLOC_*`` model flags.
    era : int
        ``ERA_V4_13``, ``ERA_V4_14`` or ``ERA_V6``.
    highatomic : int
        ``nr_reserved_highatomic``.
    oom_frac : float
        Fraction of ``min`` an ``ALLOC_OOM`` request may use; negative means
        the kernel's ``min -= min / 2``.

    Returns
    -------
    bool
        Whether the request passes.

    Notes
    -----
    Plain Python so that importing the package does not import Numba; the
    engine compiles it (``depletion.engine.watermark_ok``).
    """
    size = 1 << order
    if flags & ALLOC_NO_WATERMARKS:
        return free >= size
    if order == 0 and era != ERA_V6 and free > wmin and free > highatomic:
        # v4.x zone_watermark_fast: order 0 passes on free > mark without the
        # highatomic term, and the free-list search then finds a page as long as
        # not every free page sits in a highatomic block (v6 subtracts it here too)
        return True
    f = free - (size - 1)
    m = wmin
    if era == ERA_V6:
        if flags & ALLOC_RESERVES_V6:
            if flags & ALLOC_MIN_RESERVE:
                m -= m // 2
                if flags & ALLOC_NON_BLOCK:
                    m -= m // 4
            if flags & ALLOC_OOM:
                if oom_frac < 0.0:
                    m -= m // 2
                else:
                    m -= int(math.floor(oom_frac * m))
        else:
            f -= highatomic
    else:
        if flags & ALLOC_HIGH:
            m -= m // 2
        oom = (flags & ALLOC_OOM) != 0 and era != ERA_V4_13  # no ALLOC_OOM before 4.14
        if (flags & ALLOC_HARDER) or oom:
            if oom:
                if oom_frac < 0.0:
                    m -= m // 2
                else:
                    m -= int(math.floor(oom_frac * m))
            else:
                m -= m // 4
        else:
            f -= highatomic
    return f > m


# --- policies (MODEL.md section 5) -----------------------------------------
SCOPE_THREAD = 0  # grant follows TIF_MEMDIE (per task_struct)
SCOPE_PROCESS = 1  # grant follows signal->oom_mm (per process)

VICTIM_TIF = 0  # victim exit tests TIF_MEMDIE (v4.13)
VICTIM_PROCESS = 1  # victim exit tests tsk_is_oom_victim (v4.14+)

POLICY_NAMES = ("tif_memdie", "tif_memdie_all", "alloc_oom", "nommu", "v6", "fraction:X")


@dataclass(frozen=True)
class Policy:
    """A reserve-grant policy, as the engine needs it."""

    name: str
    era: int
    grant_flags: int
    scope: int
    victim_test: int
    all_at_kill: bool
    reaper: bool
    reaper_takes_oom_lock: bool
    reaper_extra_delay_us: float
    oom_frac: float  # -1: kernel min/2

    @property
    def era_name(self) -> str:
        """Name of the kernel era whose arithmetic the policy uses."""
        return {v: k for k, v in ERAS.items()}[self.era]


def parse_policy(name: str) -> Policy:
    """Parse a policy name (``tif_memdie``, ..., ``fraction:0.25``).

    Raises
    ------
    ValueError
        If the name is unknown or the fraction is not a number in [0, 1].
    """
    if not isinstance(name, str):
        raise ValueError(f"policy must be a string; allowed: {', '.join(POLICY_NAMES)}")
    if name == "tif_memdie":
        return Policy(name, ERA_V4_13, ALLOC_NO_WATERMARKS, SCOPE_THREAD, VICTIM_TIF, False, True, True, 0.0, -1.0)
    if name == "tif_memdie_all":
        return Policy(name, ERA_V4_13, ALLOC_NO_WATERMARKS, SCOPE_THREAD, VICTIM_TIF, True, True, True, 0.0, -1.0)
    if name == "alloc_oom":
        return Policy(name, ERA_V4_14, ALLOC_OOM, SCOPE_PROCESS, VICTIM_PROCESS, False, True, True, 0.0, -1.0)
    if name == "nommu":
        # ALLOC_OOM == ALLOC_NO_WATERMARKS and only TIF_MEMDIE threads get it; no reaper
        return Policy(
            name, ERA_V4_14, ALLOC_NO_WATERMARKS, SCOPE_THREAD, VICTIM_PROCESS, False, False, False, 0.0, -1.0
        )
    if name == "v6":
        return Policy(name, ERA_V6, ALLOC_OOM, SCOPE_PROCESS, VICTIM_PROCESS, False, True, False, 2_000_000.0, -1.0)
    if name.startswith("fraction:"):
        txt = name.split(":", 1)[1]
        try:
            x = float(txt)
        except ValueError:
            x = float("nan")
        if not (0.0 <= x <= 1.0):
            raise ValueError(f"policy {name!r}: fraction:X needs X in [0, 1]")
        return Policy(name, ERA_V4_14, ALLOC_OOM, SCOPE_PROCESS, VICTIM_PROCESS, False, True, True, 0.0, x)
    raise ValueError(f"unknown policy {name!r}; allowed: {', '.join(POLICY_NAMES)}")


def min_free_kbytes(memory_gib: float, era: int) -> int:
    """Default ``min_free_kbytes`` (``init_per_zone_wmark_min``) for a machine.

    ``isqrt(lowmem_kbytes * 16)`` clamped to [128, 65536] (v4.x) or
    [128, 262144] (v6, since 5.8's raise of the upper bound).
    """
    m_pages = int(math.floor(memory_gib * 262144))
    kb = m_pages * 4
    v = math.isqrt(kb * 16)
    hi = 262144 if era == ERA_V6 else 65536
    return max(128, min(v, hi))


def watermarks(memory_gib: float, era: int, min_free_kb: int | None, wsf: int) -> tuple[int, int, int]:
    """``(min, low, high)`` watermarks in pages (``__setup_per_zone_wmarks``)."""
    m_pages = int(math.floor(memory_gib * 262144))
    mfk = min_free_kbytes(memory_gib, era) if min_free_kb is None else int(min_free_kb)
    w = mfk // 4
    d = max(w // 4, m_pages * wsf // 10000)
    return w, w + d, w + 2 * d


def class_tables(era: int) -> dict[str, np.ndarray]:
    """Per-class integer arrays the engine uses (order 0 flags, order > 0 flags, rules)."""
    f0 = np.array([class_flags(c, era, 0) for c in CLASSES], dtype=np.int64)
    f1 = np.array([class_flags(c, era, 1) for c in CLASSES], dtype=np.int64)
    reclaim = np.array([CLASS_RULES[c].may_reclaim for c in CLASSES], dtype=np.int64)
    oom = np.array([CLASS_RULES[c].oom for c in CLASSES], dtype=np.int64)
    nomem = np.array([CLASS_RULES[c].nomemalloc for c in CLASSES], dtype=np.int64)
    nofail = np.array([CLASS_RULES[c].nofail for c in CLASSES], dtype=np.int64)
    return {"flags0": f0, "flags1": f1, "reclaim": reclaim, "oom": oom, "nomemalloc": nomem, "nofail": nofail}
