"""Episode traces: free pages over time, with the events that moved them.

:func:`trace_episodes` reruns chosen episodes of a run with tracing on and
returns one :class:`Trace` per episode: the true free-page count ``F(t)``
after every event, the event's kind, thread and size, the watermark floors
of the policy, and the episode's normal outcome row. Only the episodes asked
for are traced; the engine's hot path (:func:`depletion.engine.run_block`) is
compiled without any tracing code, and the traced episode's outcome row is
the same as :func:`depletion.engine.simulate_rows` gives for it, bit for bit.

**True F.** The engine credits teardown, reaper and bystander-hold frees to
``F`` lazily (docs/model-notes.md, "Exact shortcuts"). A trace row holds the
true ``F`` at its time: the engine's ``F`` plus the pages teardown and
reaping have freed by then and the bystander holds that ended by then,
computed without touching the state. So:

- ``free_pages.min() == outcome["min_free"]``: true ``F`` falls only at a
  grant, and the engine makes ``F`` exact before any grant that could set a
  new minimum, so its ``min_free`` is the true minimum.
- ``free_pages[-1] == outcome["F_end"] + (freed_bystander[-1] -
  outcome["freed_bystander"])``: at the end every mm is credited, but
  bystander holds that ended and were never needed for a check stay
  uncredited in the engine's ``F_end`` (a bookkeeping value that keeps
  conservation with its counters). Without bystanders the two are equal.
- Conservation, row by row: ``free_pages == F0 - (pages granted so far) +
  (victim pages freed so far: holds, exits, reclaim) + freed_mm +
  freed_bystander``.

After a ``shortcut`` event (every victim thread has exited and the engine
has proved that the remaining bystander traffic cannot reach a watermark,
``min_free`` or the floor) bystander requests are no longer simulated, so
the rows after it show ``F`` without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depletion import semantics as sem
from depletion.config import Scenario, load_scenario
from depletion.engine import (
    NTR,
    OUTCOLS,
    TR_CLS,
    TR_F,
    TR_FBYST,
    TR_FMM,
    TR_KIND,
    TR_MM,
    TR_PAGES,
    TR_THREAD,
    build_inputs,
    trace_one,
)
from depletion.engine import TRACE_KINDS as KINDS
from depletion.errors import DepletionError, check_whole

#: event code of each kind name (``KINDS``, re-exported from the engine, names the codes)
KIND = {name: i for i, name in enumerate(KINDS)}


@dataclass
class Trace:
    """The trace of one episode (see the module docstring for the exact relations).

    Attributes
    ----------
    episode : int
        Episode index (with the seed, it fixes the episode).
    policy : str
        Policy name.
    seed : int
        Seed.
    W : int
        The ``min`` watermark in pages.
    floors : dict of str to int
        Lowest ``F`` each kind of request may leave (an order-0 request
        passes while ``F`` is above it): ``min`` (``W``, plain requests),
        ``oom_victim`` (a victim allocating with the policy's grant:
        ``W - W//2`` for ALLOC_OOM, ``W - floor(X W)`` for ``fraction:X``, 0
        for NO_WATERMARKS), ``atomic`` (``GFP_ATOMIC``, ALLOC_HIGH |
        ALLOC_HARDER or v6 MIN_RESERVE | NON_BLOCK) and ``exhaustion_floor``
        (the scenario's).
    t_us : ndarray of float64
        Time of each event (microseconds), non-decreasing.
    free_pages : ndarray of int64
        True free pages ``F(t)`` just after each event.
    kind : ndarray of int64
        Event codes, ``KINDS[code]`` is the name.
    thread : ndarray of int64
        Victim thread index (victim-major, process, thread) or -1.
    mm : ndarray of int64
        Victim mm of the thread, reaper or mm event, or -1.
    cls : ndarray of int64
        Allocation class (index into :data:`depletion.semantics.CLASSES`) of
        a request event, or -1.
    pages : ndarray of int64
        Size of the request (request, grant, fail) or pages freed by the event
        (victim hold, thread exit, reclaim round); 0 otherwise.
    freed_mm : ndarray of int64
        Pages freed by teardown and the reaper up to each event (true, i.e.
        credited up to the event's time).
    freed_bystander : ndarray of int64
        Bystander-hold pages whose hold ended by each event's time.
    outcome : dict of str to float
        The episode's outcome row (:data:`depletion.engine.OUTCOLS`).
    truncated_trace : bool
        The trace buffer (``max_events`` rows) filled up and later events were
        not recorded (the episode itself ran to its end).
    """

    episode: int
    policy: str
    seed: int
    W: int
    floors: dict[str, int]
    t_us: np.ndarray
    free_pages: np.ndarray
    kind: np.ndarray
    thread: np.ndarray
    mm: np.ndarray
    cls: np.ndarray
    pages: np.ndarray
    freed_mm: np.ndarray
    freed_bystander: np.ndarray
    outcome: dict[str, float]
    truncated_trace: bool = False
    kinds: tuple[str, ...] = field(default=KINDS, repr=False)

    def __len__(self) -> int:
        return int(self.t_us.shape[0])

    def mask(self, *names: str) -> np.ndarray:
        """Boolean mask of the events of the given kind names.

        Raises
        ------
        DepletionError
            For an unknown kind name.
        """
        bad = [n for n in names if n not in KIND]
        if bad:
            raise DepletionError(f"unknown trace event kind {bad[0]!r}; allowed: {', '.join(KINDS)}")
        return np.isin(self.kind, [KIND[n] for n in names])

    def kind_names(self) -> list[str]:
        """The name of each event's kind, in order."""
        return [KINDS[k] for k in self.kind]


def _floor(W: int, flags: int, era: int, highatomic: int, oom_frac: float) -> int:
    """Lowest F an order-0 request with ``flags`` may leave: ``(smallest passing F) - 1``.

    Found with :func:`depletion.semantics.watermark_ok` itself, so the
    integer arithmetic is the kernel's of that era (the first passing F is at
    most ``W + highatomic + 1``).
    """
    for F in range(0, W + highatomic + 2):
        if sem.watermark_ok(F, 0, W, flags, era, highatomic, oom_frac):
            return F - 1
    raise AssertionError("unreachable: an order-0 request passes above W + highatomic")


def floors(params: dict[str, Any], policy: str | sem.Policy, W: int) -> dict[str, int]:
    """The floors of :attr:`Trace.floors` for a policy (its era, grant flags and fraction).

    Parameters
    ----------
    params : dict
        Resolved scenario parameters (for ``highatomic_pages`` and
        ``exhaustion_floor``).
    policy : str or Policy
        The policy.
    W : int
        The ``min`` watermark in pages.

    Returns
    -------
    dict of str to int
    """
    pol = sem.parse_policy(policy) if isinstance(policy, str) else policy
    ha = int(params["highatomic_pages"])
    return {
        "min": int(W),
        "oom_victim": _floor(W, pol.grant_flags, pol.era, ha, pol.oom_frac),
        "atomic": _floor(W, sem.class_flags("atomic", pol.era, 0), pol.era, ha, pol.oom_frac),
        "exhaustion_floor": int(params["exhaustion_floor"]),
    }


def trace_episodes(
    scenario: Scenario | str | Path | None,
    policy: str,
    episodes: Sequence[int],
    seed: int = 0,
    max_events: int = 200_000,
    *,
    tilt: Mapping[str, Any] | None = None,
) -> list[Trace]:
    """Trace chosen episodes: ``F(t)`` against the floors, with every event.

    Each episode is a pure function of ``(seed, episode)``, so episode ``e``
    here is episode ``e`` of any run with the same scenario, policy and seed
    (``depletion.engine.simulate_rows(inputs, seed, e, 1)``), whatever other
    episodes are traced alongside; its :attr:`Trace.outcome` is that run's
    row, bit for bit.

    Parameters
    ----------
    scenario : Scenario, str, Path or None
        A loaded scenario, a TOML path, or ``None`` for MODEL.md's defaults.
    policy : str
        Policy name (``tif_memdie``, ``alloc_oom``, ``fraction:0.25``, ...).
    episodes : sequence of int
        Episode indices to trace (each ``>= 0``; repeats are allowed).
    seed : int
        Seed, ``0 <= seed < 2**64``.
    max_events : int
        Capacity of each trace in rows (about one per engine event, two at a
        request that is granted or failed at once). An episode with more is
        still simulated to its end, its trace stops there and is flagged
        :attr:`Trace.truncated_trace`.
    tilt : mapping, optional
        An importance-sampling tilt (:func:`depletion.rare.validate_tilt`):
        trace the episodes as :func:`depletion.rare.estimate_rare` draws them
        from the proposal, e.g. to see what its hits look like. The outcome's
        ``log_weight`` is then the episode's ``log p/q``.

    Returns
    -------
    list of Trace
        One per entry of ``episodes``, in order.

    Raises
    ------
    DepletionError
        For an unknown policy, a bad episode index, seed or ``max_events``.

    Examples
    --------
    >>> from depletion.trace import trace_episodes
    >>> (tr,) = trace_episodes(None, "alloc_oom", [3], seed=1)  # doctest: +SKIP
    >>> tr.free_pages.min() == tr.outcome["min_free"]  # doctest: +SKIP
    True
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    try:
        pol = sem.parse_policy(policy)
    except (ValueError, TypeError) as e:
        raise DepletionError(f"policy: {e}") from None
    check_whole("seed", seed, 0, 2**64, "2**64")
    check_whole("max_events", max_events, 1)
    eps = list(episodes)
    for e in eps:
        if not isinstance(e, (int, np.integer)) or isinstance(e, bool) or not 0 <= e < 2**63:
            raise DepletionError(f"episodes: expected whole numbers >= 0, got {e!r}")
    if tilt:
        from depletion.rare import proposal_params

        inp = build_inputs(scenario.params, pol, proposal=proposal_params(scenario.params, tilt))
    else:
        inp = build_inputs(scenario.params, pol)
    fl = floors(scenario.params, pol, inp.W)
    cap = int(max_events)
    trt = np.zeros(cap, dtype=np.float64)
    tri = np.zeros((cap, NTR), dtype=np.int64)
    trn = np.zeros(2, dtype=np.int64)
    out = np.zeros(len(OUTCOLS), dtype=np.float64)
    traces = []
    for e in eps:
        trace_one(np.uint64(seed), np.int64(e), *inp.arrays(), trt, tri, trn, out)
        n = int(trn[0])
        traces.append(
            Trace(
                episode=int(e),
                policy=policy,
                seed=int(seed),
                W=int(inp.W),
                floors=dict(fl),
                t_us=trt[:n].copy(),
                free_pages=tri[:n, TR_F].copy(),
                kind=tri[:n, TR_KIND].copy(),
                thread=tri[:n, TR_THREAD].copy(),
                mm=tri[:n, TR_MM].copy(),
                cls=tri[:n, TR_CLS].copy(),
                pages=tri[:n, TR_PAGES].copy(),
                freed_mm=tri[:n, TR_FMM].copy(),
                freed_bystander=tri[:n, TR_FBYST].copy(),
                outcome={name: float(out[i]) for i, name in enumerate(OUTCOLS)},
                truncated_trace=bool(trn[1]),
            )
        )
    return traces
