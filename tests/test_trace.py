"""Episode traces (depletion.trace): same episode, exact F(t), consistent with the outcome row.

Nothing here is statistical: every check is an exact identity that must hold
in every traced episode, so the tests use fixed seeds and episode lists.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from depletion.config import load_scenario
from depletion.engine import OUTCOLS, build_inputs, simulate_rows
from depletion.errors import DepletionError
from depletion.semantics import CLASSES
from depletion.trace import KIND, KINDS, Trace, trace_episodes

# W = 32 pages so that requests fail, victims reclaim and pass through the OOM
# killer, bystanders fail; every bystander stream on (memalloc at 1/ms so that
# NO_WATERMARKS traffic digs below the victims' floors); a 100 ms horizon ends
# some episodes there
SMALL = {
    "min_free_kbytes": 128,
    "threads": 3,
    "rss_pages": 2000,
    "horizon_us": 100_000.0,
    "reclaim_yield_pages": 1,
    "bystanders.memalloc.rate_per_ms": 1.0,
    "bystanders.nofs.rate_per_ms": 0.5,
}
# a group kill of 3 victims with a sharer each; a reaper that often fails and
# gives up after 2 attempts; several classes (memalloc, nomemalloc, nofail)
GROUP = {
    "min_free_kbytes": 128,
    "victims": 3,
    "mm_sharers": 1,
    "threads": 3,
    "rss_pages": 500,
    "reaper_lock_p": 0.4,
    "reaper_retries": 2,
    "reaper_retry_us": 2000.0,
    "horizon_us": 200_000.0,
    "highatomic_pages": 4,
    "class_probs": {"kernel": 0.4, "nofs": 0.3, "atomic": 0.1, "memalloc": 0.05, "nomemalloc": 0.1, "nofail": 0.05},
    "order_probs": [0.8, 0.1, 0.05, 0.05],
}
# a 3 ms horizon cuts many episodes off with victim threads still alive, some mid-request
SHORT = dict(SMALL, horizon_us=3000.0)
# the post-victim shortcut is taken in most default episodes (W = 4096, F never near it after the victims)
DEFAULT: dict = {}

CASES = [
    ("default", DEFAULT, "tif_memdie", 11),
    ("default", DEFAULT, "alloc_oom", 11),
    ("small", SMALL, "alloc_oom", 3),
    ("small", SMALL, "tif_memdie", 3),
    ("small", SMALL, "v6", 4),
    ("small", SMALL, "fraction:0.25", 5),
    ("group", GROUP, "alloc_oom", 6),
    ("group", GROUP, "tif_memdie", 6),
    ("group", GROUP, "tif_memdie_all", 7),
    ("group", GROUP, "nommu", 7),
    ("short", SHORT, "alloc_oom", 8),
    ("short", SHORT, "tif_memdie", 8),
]
EPISODES = list(range(24))


@cache
def _scenario(name: str):
    return load_scenario(None, {"default": DEFAULT, "small": SMALL, "group": GROUP, "short": SHORT}[name])


@cache
def _traced(name: str, policy: str, seed: int) -> tuple[list[Trace], np.ndarray]:
    sc = _scenario(name)
    traces = trace_episodes(sc, policy, EPISODES, seed=seed)
    rows = simulate_rows(build_inputs(sc.params, policy), seed, 0, len(EPISODES))
    return traces, rows


def _count(tr: Trace, name: str) -> int:
    return int(np.count_nonzero(tr.kind == KIND[name]))


def _pages(tr: Trace, *names: str) -> int:
    return int(tr.pages[tr.mask(*names)].sum())


def _check(tr: Trace, row: np.ndarray) -> None:
    """Every identity between a trace and its episode's outcome row (module docstring of depletion.trace)."""
    o = tr.outcome
    # the outcome row is simulate_rows' row for (seed, episode), bit for bit
    assert np.array_equal(np.array([o[c] for c in OUTCOLS]), row)
    assert not tr.truncated_trace
    F = tr.free_pages
    assert (F >= 0).all()
    assert (np.diff(tr.t_us) >= 0).all()
    assert tr.kind[0] == KIND["start"] and tr.t_us[0] == 0.0 and F[0] == o["F0"]
    assert tr.kind[-1] == KIND["end"] and tr.t_us[-1] == o["resolve_us"]
    assert np.count_nonzero(tr.mask("start", "end")) == 2
    # min_free: the true F falls only at grants, and the engine makes F exact before any
    # grant that could set a new minimum, so the minimum of the true F is the kernel's min_free
    assert F.min() == o["min_free"]
    if F.min() <= tr.floors["exhaustion_floor"]:
        assert o["exhausted"] == 1
    # F_end: every mm is credited at the end; bystander holds that ended uncredited are the difference
    assert tr.freed_mm[-1] == o["freed_mm"]
    assert F[-1] == o["F_end"] + (tr.freed_bystander[-1] - o["freed_bystander"])
    assert tr.freed_bystander[-1] >= o["freed_bystander"]
    # conservation after every event: F0 - allocated + freed (each freed page has its source)
    alloc = np.where(tr.mask("victim_grant", "bystander_grant"), tr.pages, 0)
    vfree = np.where(tr.mask("victim_hold_freed", "thread_exit", "reclaim_round"), tr.pages, 0)
    assert np.array_equal(F, o["F0"] - np.cumsum(alloc) + np.cumsum(vfree) + tr.freed_mm + tr.freed_bystander)
    # the row's counters are sums of the events
    assert _pages(tr, "victim_grant", "bystander_grant") == o["allocated"]
    assert _pages(tr, "victim_hold_freed") == o["freed_hold"]
    assert _pages(tr, "thread_exit") == o["freed_exit"]
    assert _pages(tr, "reclaim_round") == o["freed_reclaim"]
    assert _count(tr, "victim_request") == o["victim_requests"]
    assert _count(tr, "victim_fail") == o["victim_failures"]
    for ci, c in enumerate(CLASSES):
        assert np.count_nonzero(tr.mask("bystander_fail") & (tr.cls == ci)) == o[f"bystander_failures.{c}"]
    # each request ends in one grant or one failure; one may still be open when the episode is cut off
    open_ = 0
    for j in range(int(o["n_threads"])):
        mine = tr.thread == j
        d = np.count_nonzero(mine & tr.mask("victim_request")) - np.count_nonzero(
            mine & tr.mask("victim_grant", "victim_fail")
        )
        assert d in (0, 1)
        open_ += d
    exited = _count(tr, "thread_exit")
    assert exited <= o["n_threads"]
    if exited == o["n_threads"]:
        assert open_ == 0
    if o["stalled"] == 0:  # a normal end: every thread has exited and every mm is freed
        assert exited == o["n_threads"] and open_ == 0
        assert _count(tr, "mm_freed") == _n_mms(tr)
    # the reaper: a give-up is recorded iff reaper_gave_up
    assert (_count(tr, "reaper_give_up") > 0) == (o["reaper_gave_up"] == 1)


def _n_mms(tr: Trace) -> int:
    """Number of victim mms of the trace's episode (the mm column of the thread events)."""
    return int(tr.mm[tr.thread >= 0].max()) + 1


@pytest.mark.parametrize("name,over,policy,seed", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_trace_matches_the_episode(name, over, policy, seed):
    traces, rows = _traced(name, policy, seed)
    assert [t.episode for t in traces] == EPISODES
    for tr, row in zip(traces, rows):
        _check(tr, row)


def test_traces_cover_every_event_kind():
    """The cases above exercise every kind of event (so the checks are not vacuous), including
    the post-victim shortcut, stalls cut off at the horizon, reaper give-ups and lock contention."""
    seen: set[int] = set()
    cut_open = 0  # episodes cut off at the horizon with a request still open
    for name, _, policy, seed in CASES:
        traces, _ = _traced(name, policy, seed)
        for tr in traces:
            seen |= set(tr.kind.tolist())
            n_open = np.count_nonzero(tr.mask("victim_request")) - np.count_nonzero(
                tr.mask("victim_grant", "victim_fail")
            )
            cut_open += int(tr.outcome["stalled"] == 1 and n_open > 0)
    assert {KINDS[k] for k in seen} == set(KINDS)
    assert cut_open > 0


def test_victim_grants_respect_the_floors():
    """Under alloc_oom a victim's grant never leaves F below the ALLOC_OOM floor, and its first
    try (own class flags) never below the atomic one; memalloc requests may go to 0."""
    for name, _, policy, seed in CASES:
        if policy not in ("alloc_oom", "v6", "fraction:0.25"):
            continue
        traces, _ = _traced(name, policy, seed)
        for tr in traces:
            g = tr.mask("victim_grant") & (tr.cls != CLASSES.index("memalloc"))
            assert (tr.free_pages[g] >= min(tr.floors["oom_victim"], tr.floors["atomic"])).all()


# W = 39 pages (min_free_kbytes = 156) makes the integer halvings visible: the
# floors are those of MODEL.md section 3, worked by hand
FLOORS = {
    # v4.13: victims NO_WATERMARKS; atomic HIGH|HARDER: 39 - 19 = 20, then 20 - 20//4 = 15
    "tif_memdie": {"min": 39, "oom_victim": 0, "atomic": 15, "exhaustion_floor": 0},
    # v4.14 ALLOC_OOM: 39 - 39//2 = 20
    "alloc_oom": {"min": 39, "oom_victim": 20, "atomic": 15, "exhaustion_floor": 0},
    # fraction:0.25: 39 - floor(0.25 * 39) = 39 - 9 = 30
    "fraction:0.25": {"min": 39, "oom_victim": 30, "atomic": 15, "exhaustion_floor": 0},
    # v6: OOM 39 - 19 = 20; atomic MIN_RESERVE|NON_BLOCK 39 - 19 = 20, 20 - 5 = 15
    "v6": {"min": 39, "oom_victim": 20, "atomic": 15, "exhaustion_floor": 0},
    "nommu": {"min": 39, "oom_victim": 0, "atomic": 15, "exhaustion_floor": 0},
}


@pytest.mark.parametrize("policy", list(FLOORS))
def test_floors(policy):
    sc = load_scenario(None, {"min_free_kbytes": 156, "threads": 2, "rss_pages": 100})
    (tr,) = trace_episodes(sc, policy, [0], seed=1)
    assert tr.W == 39 and tr.floors == FLOORS[policy]
    # a custom exhaustion floor is passed through
    sc = load_scenario(None, {"min_free_kbytes": 156, "exhaustion_floor": 5, "threads": 2})
    assert trace_episodes(sc, policy, [0])[0].floors["exhaustion_floor"] == 5


def test_same_trace_whatever_is_traced_alongside():
    sc = _scenario("small")
    a = trace_episodes(sc, "alloc_oom", [3, 17], seed=9)
    b = trace_episodes(sc, "alloc_oom", [40, 17, 0, 3, 3], seed=9)
    for x, y in ((a[0], b[3]), (a[0], b[4]), (a[1], b[1])):
        assert x.episode == y.episode
        for f in ("t_us", "free_pages", "kind", "thread", "mm", "cls", "pages", "freed_mm", "freed_bystander"):
            assert np.array_equal(getattr(x, f), getattr(y, f)), f
        assert x.outcome == y.outcome
    # a different seed is a different episode
    c = trace_episodes(sc, "alloc_oom", [3], seed=10)[0]
    assert len(c) != len(a[0]) or not np.array_equal(c.t_us, a[0].t_us)


def test_tilted_episodes_are_traced_as_estimate_rare_draws_them():
    """With a tilt, the trace is of the proposal's episode: its row (log_weight included) is the
    row the importance-sampling kernel gives, and every identity above still holds."""
    from depletion.rare import proposal_params

    sc = _scenario("small")
    tilt = {"reaper_lock_p": 0.3, "bystanders.memalloc.victim_rate_per_ms": 3.0, "exit_allocs": 5.0}
    inp = build_inputs(sc.params, "alloc_oom", proposal=proposal_params(sc.params, tilt))
    rows = simulate_rows(inp, 4, 0, 12)
    traces = trace_episodes(sc, "alloc_oom", list(range(12)), seed=4, tilt=tilt)
    for tr, row in zip(traces, rows):
        _check(tr, row)
    assert any(tr.outcome["log_weight"] != 0.0 for tr in traces)


def test_full_buffer_truncates_the_trace_not_the_episode():
    sc = _scenario("small")
    full = trace_episodes(sc, "alloc_oom", [2], seed=3)[0]
    short = trace_episodes(sc, "alloc_oom", [2], seed=3, max_events=10)[0]
    assert len(full) > 10 and not full.truncated_trace
    assert len(short) == 10 and short.truncated_trace
    assert short.outcome == full.outcome
    assert np.array_equal(short.free_pages, full.free_pages[:10]) and np.array_equal(short.kind, full.kind[:10])


def test_bad_arguments_raise():
    with pytest.raises(DepletionError, match="policy"):
        trace_episodes(None, "no_such_policy", [0])
    with pytest.raises(DepletionError, match="episodes"):
        trace_episodes(None, "alloc_oom", [-1])
    with pytest.raises(DepletionError, match="max_events"):
        trace_episodes(None, "alloc_oom", [0], max_events=0)
    with pytest.raises(DepletionError, match="unknown trace event kind"):
        trace_episodes(_scenario("small"), "alloc_oom", [0])[0].mask("no_such_kind")
