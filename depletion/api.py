"""The Python API: one code path for the CLI, TOML scenarios and Jupyter.

>>> import depletion
>>> sc = depletion.load_scenario("configs/tetsuo-1000-threads.toml")
>>> res = depletion.simulate(sc, episodes=10_000, seed=1, policies=["tif_memdie", "alloc_oom"])
>>> res.policies["alloc_oom"]["exhausted"]["p"]
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depletion.config import Scenario, load_scenario
from depletion.errors import DepletionError, check_whole
from depletion.semantics import CLASSES, parse_policy
from depletion.stats import CI_METHODS, NumericAcc, ProportionAcc

#: 0/1 outcomes, reported as proportions
PROPORTIONS = ("exhausted", "stalled", "victim_failed", "reaper_gave_up", "bystander_failed")
#: numeric outcomes: name -> whether the values are whole numbers (exact histogram)
NUMBERS = {
    "min_free": True,
    "min_free_frac": False,
    "victim_failures": True,
    "max_stall_us": False,
    "resolve_us": False,
    "full_reserve_threads": True,
    "oom_rekills": True,
}
OUTCOME_DOCS = {
    "exhausted": "free pages reached exhaustion_floor, or a NO_WATERMARKS request found too few pages",
    "stalled": "a victim wait exceeded stall_us, or the horizon was reached",
    "victim_failed": "at least one victim request failed",
    "reaper_gave_up": "the OOM reaper hit its retry limit",
    "bystander_failed": "at least one bystander request failed",
    "min_free": "lowest free pages F(t)",
    "min_free_frac": "lowest F(t) / W",
    "victim_failures": "victim requests that failed",
    "max_stall_us": "longest single wait of a victim thread, us",
    "resolve_us": "time until every victim page is free, us",
    "full_reserve_threads": "threads that held NO_WATERMARKS access",
    "oom_rekills": "OOM-killer passes after MMF_OOM_SKIP that would kill another process",
}
DEFAULT_CHUNK = 1 << 16


@dataclass
class Result:
    """Estimates of one simulation: per policy, per outcome.

    Attributes
    ----------
    seed, episodes : int
    scenario : Scenario
    policies : dict
        ``{policy: {outcome: estimate dict}}`` (see :meth:`to_dict`).
    episode_data : dict
        ``{policy: {column: ndarray}}`` when ``keep_episodes=True``.
    """

    seed: int
    episodes: int
    scenario: Scenario
    policies: dict[str, dict[str, dict]]
    episode_data: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ci_method: str = "wilson"
    confidence: float = 0.95
    pairs: list[dict] = field(default_factory=list)
    stop: str = "fixed"
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"seed", "episodes", "scenario", "policies"}``."""
        return {
            "seed": self.seed,
            "episodes": self.episodes,
            "ci_method": self.ci_method,
            "confidence": self.confidence,
            "stop": self.stop,
            "target_halfwidth": self.target,
            "scenario": self.scenario.to_dict(),
            "policies": self.policies,
            "pairs": self.pairs,
        }

    def to_json(self, **kw: Any) -> str:
        """:meth:`to_dict` as strict JSON (an infinite or undefined number, e.g. an
        order-statistic interval end that ``n`` episodes cannot bound, becomes ``null``)."""
        return json.dumps(_finite(self.to_dict()), allow_nan=False, **kw)

    def table(self) -> str:
        """A readable text table: one row per outcome, one column per policy, then paired differences."""
        pols = list(self.policies)
        rows: list[list[str]] = []
        first = next(iter(self.policies.values()))
        for name in first:
            rows.append([name, *(_fmt_est(self.policies[p][name]) for p in pols)])
        stop = ""
        if self.stop != "fixed":
            why = "target reached" if self.stop == "target" else "max_episodes reached, target not met"
            stop = f" (sequential, half-width {self.target}: {why})"
        lines = [
            f"scenario {self.scenario.name}: {self.episodes} episodes{stop}, seed {self.seed}, "
            f"{_pct(self.confidence)} {self.ci_method} intervals for proportions",
            *_grid(["outcome", *pols], rows),
        ]
        if self.pairs:
            lines += ["", f"paired differences (same episodes), {_pct(self.confidence)} intervals:"]
            prow = []
            for pr in self.pairs:
                for name in PROPORTIONS:
                    prow.append([f"{pr['a']} - {pr['b']}", name, _fmt_diff(pr["outcomes"][name])])
            lines += _grid(["pair", "outcome", "difference [interval] (discordant a/b, McNemar p)"], prow)
        return "\n".join(lines)

    def compare(self, a: str, b: str) -> dict[str, dict]:
        """Paired differences ``a - b`` of every outcome (both policies must have been simulated).

        Raises
        ------
        DepletionError
            If ``a`` or ``b`` is not among the simulated policies, or ``a == b``.
        """
        return pair_lookup(self.pairs, a, b, list(self.policies))

    def to_dataframe(self) -> Any:
        """The estimates as a tidy ``pandas.DataFrame`` (one row per policy and outcome; needs pandas)."""
        import pandas as pd

        recs = []
        for p, outs in self.policies.items():
            for o, e in outs.items():
                r = {"policy": p, "outcome": o, "estimate": e.get("p", e.get("mean"))}
                r.update({k: v for k, v in e.items() if not isinstance(v, dict) and k not in ("p", "mean")})
                recs.append(r)
        return pd.DataFrame.from_records(recs)

    def _repr_html_(self) -> str:
        from depletion.display import result_html

        return result_html(self)

    def __str__(self) -> str:
        return self.table()


def _fmt_p(x: float) -> str:
    if x == 0:
        return "0"
    if x >= 0.001:
        return f"{x:.4f}"
    return f"{x:.2e}"


def _fmt_n(x: float) -> str:
    if x != x:
        return "nan"
    if abs(x) >= 1e5 or (0 < abs(x) < 1e-2):
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.0f}"


def outcome_arrays(rows: np.ndarray, bystander_classes: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Per-episode values of every reported outcome, from the engine's rows.

    Parameters
    ----------
    rows : ndarray
        ``n x NCOL`` rows of :func:`depletion.engine.simulate_rows`.
    bystander_classes : iterable of str
        Classes whose ``bystander_failures.CLASS`` counts are reported.

    Returns
    -------
    dict of str to ndarray
        0/1 arrays for :data:`PROPORTIONS`, numbers for :data:`NUMBERS`.
    """
    from depletion.engine import COL

    col = {k: rows[:, i] for k, i in COL.items()}
    bf = np.zeros(rows.shape[0], dtype=bool)
    for c in CLASSES:
        bf |= col[f"bystander_failures.{c}"] > 0
    out: dict[str, np.ndarray] = {
        "exhausted": col["exhausted"] > 0,
        "stalled": col["stalled"] > 0,
        "victim_failed": col["victim_failures"] > 0,
        "reaper_gave_up": col["reaper_gave_up"] > 0,
        "bystander_failed": bf,
    }
    for k in NUMBERS:
        out[k] = col["min_free"] / np.maximum(col["W"], 1) if k == "min_free_frac" else col[k]
    for c in bystander_classes:
        out[f"bystander_failures.{c}"] = col[f"bystander_failures.{c}"]
    return out


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _pct(c: float) -> str:
    return f"{c * 100:g}%"


def _grid(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    return out + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _fmt_est(e: dict) -> str:
    if "p" in e:
        return f"{_fmt_p(e['p'])} [{_fmt_p(e['ci_low'])}, {_fmt_p(e['ci_high'])}] ({e['count']})"
    q = e["quantiles"]
    return f"{_fmt_n(e['mean'])} ±{_fmt_n(e['ci_high'] - e['mean'])} (p50 {_fmt_n(q['0.5'])}, p99 {_fmt_n(q['0.99'])})"


def _fmt_d(x: float) -> str:
    if x != x:
        return "nan"
    if x == 0:
        return "0"
    return f"{x:+.4f}" if abs(x) >= 0.001 else f"{x:+.2e}"


def _fmt_diff(e: dict) -> str:
    s = f"{_fmt_d(e['diff'])} [{_fmt_d(e['ci_low'])}, {_fmt_d(e['ci_high'])}]"
    if "n10" in e:
        pv = e["mcnemar_p"]
        s += f" ({e['n10']}/{e['n01']}, " + ("p<1e-300)" if pv == 0 else f"p={pv:.3g})")
    return s


def pair_lookup(pairs: list[dict], a: str, b: str, policies: list[str]) -> dict[str, dict]:
    """The paired estimates ``a - b`` from stored pairs (which hold each pair once, in policy order)."""
    for p in (a, b):
        if p not in policies:
            raise DepletionError(f"compare: policy {p!r} was not simulated; allowed: {', '.join(policies)}")
    if a == b:
        raise DepletionError("compare: --a and --b must be two different policies")
    for pr in pairs:
        if (pr["a"], pr["b"]) == (a, b):
            return pr["outcomes"]
        if (pr["a"], pr["b"]) == (b, a):
            return {k: flip_diff(e) for k, e in pr["outcomes"].items()}
    raise DepletionError(f"compare: no paired estimates of {a} and {b}")


def flip_diff(e: dict) -> dict:
    """A paired estimate of ``a - b`` turned into one of ``b - a``."""
    f = dict(e)
    f["diff"], f["ci_low"], f["ci_high"] = -e["diff"], -e["ci_high"], -e["ci_low"]
    if "n10" in e:
        f["n10"], f["n01"] = e["n01"], e["n10"]
        if "p_a" in e:
            f["p_a"], f["p_b"] = e["p_b"], e["p_a"]
    return f


class _Accumulator:
    """All outcome accumulators of one policy."""

    def __init__(self, bystander_classes: Iterable[str]) -> None:
        self.props = {k: ProportionAcc() for k in PROPORTIONS}
        self.nums = {k: NumericAcc(integer=v) for k, v in NUMBERS.items()}
        for c in bystander_classes:
            self.nums[f"bystander_failures.{c}"] = NumericAcc(integer=True)

    def add(self, vals: dict[str, np.ndarray]) -> None:
        for k, a in self.props.items():
            a.add(vals[k])
        for k, a in self.nums.items():
            a.add(vals[k])

    def estimate(self, name: str, confidence: float, method: str) -> dict:
        if name in self.props:
            return self.props[name].estimate(confidence, method)  # type: ignore[arg-type]
        return self.nums[name].estimate(confidence)

    def estimates(self, confidence: float, method: str) -> dict[str, dict]:
        return {k: self.estimate(k, confidence, method) for k in [*self.props, *self.nums]}


class _PairAccumulator:
    """Paired differences (a - b) of two policies run on the same episodes."""

    def __init__(self) -> None:
        from depletion.stats import DiffAcc, PairAcc

        self.props = {k: PairAcc() for k in PROPORTIONS}
        self.nums = {k: DiffAcc() for k in NUMBERS}

    def add(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
        for k, acc in self.props.items():
            acc.add(a[k], b[k])
        for k, acc in self.nums.items():
            acc.add(a[k], b[k])

    def estimates(self, confidence: float) -> dict[str, dict]:
        out = {k: acc.estimate(confidence) for k, acc in self.props.items()}
        out.update({k: acc.estimate(confidence) for k, acc in self.nums.items()})
        return out


#: outcomes a sequential stop waits for when none are named
DEFAULT_TARGET_OUTCOMES = ("exhausted", "victim_failed", "stalled")


@dataclass(frozen=True)
class Target:
    """A sequential-stopping target: every named outcome's interval half-width <= ``value``.

    ``relative=True`` means ``value`` is a fraction of the estimate (``"5%"``).
    """

    value: float
    relative: bool = False
    outcomes: tuple[str, ...] = DEFAULT_TARGET_OUTCOMES

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def parse_target(text: str | float, outcomes: Iterable[str] | None = None) -> Target:
    """Parse ``--target-halfwidth``: ``0.001`` (absolute) or ``5%`` (relative to the estimate).

    Raises
    ------
    DepletionError
        For a malformed or non-positive value, or an unknown outcome.
    """
    s = str(text).strip()
    rel = s.endswith("%")
    try:
        v = float(s[:-1] if rel else s)
    except ValueError:
        raise DepletionError(
            f"target_halfwidth: {text!r} is not a number; give e.g. 0.001 (absolute) or 5% (relative)"
        ) from None
    if rel:
        v /= 100.0
    if not (math.isfinite(v) and v > 0):
        raise DepletionError(f"target_halfwidth: {text!r} must be > 0")
    outs = tuple(outcomes) if outcomes else DEFAULT_TARGET_OUTCOMES
    for o in outs:
        if o not in PROPORTIONS and o not in NUMBERS:
            raise DepletionError(f"outcome: unknown {o!r}; allowed: {', '.join([*PROPORTIONS, *NUMBERS])}")
    return Target(v, rel, outs)


@dataclass
class PointRun:
    """What :func:`run_point` accumulated for one scenario and its policies."""

    episodes: int
    stop: str  # "fixed", "target" or "max_episodes"
    accs: dict[str, _Accumulator]
    pairs: dict[tuple[str, str], _PairAccumulator]
    kept: dict[str, dict[str, np.ndarray]]

    def estimates(self, confidence: float, method: str) -> dict[str, dict[str, dict]]:
        return {p: a.estimates(confidence, method) for p, a in self.accs.items()}

    def pair_estimates(self, confidence: float) -> list[dict]:
        return [{"a": a, "b": b, "outcomes": acc.estimates(confidence)} for (a, b), acc in self.pairs.items()]


class PointState:
    """Accumulates one scenario's chunks, in episode order, for all its policies.

    The one place where chunks become estimates: the in-process loop
    (:func:`run_point`) and the distributed driver
    (:mod:`depletion.distributed`) both feed chunk ``k`` (episodes
    ``[k * chunk_size, ...)``, every policy) through :meth:`add` in order of
    ``k``, so the result is the same bit for bit wherever the chunks ran.

    Parameters
    ----------
    scenario : Scenario
    policies : list of str
        Validated, distinct policy names.
    episodes : int
        Episodes per policy (with a target: the least before the first check).
    chunk_size : int
        Episodes per kernel call and per stopping check.
    target : Target, optional
    max_episodes : int, optional
        Cap with a target (default: 100 x ``episodes``).
    ci_method, confidence
        Interval settings used by the stopping rule.
    keep_episodes : bool
        Keep per-episode arrays.
    pairs : bool
        Accumulate paired differences for every pair of policies.
    """

    def __init__(
        self,
        scenario: Scenario,
        policies: list[str],
        episodes: int,
        chunk_size: int = DEFAULT_CHUNK,
        *,
        target: Target | None = None,
        max_episodes: int | None = None,
        ci_method: str = "wilson",
        confidence: float = 0.95,
        keep_episodes: bool = False,
        pairs: bool = True,
    ) -> None:
        self.scenario = scenario
        self.policies = list(policies)
        self.episodes = int(episodes)
        self.chunk_size = int(chunk_size)
        self.target = target
        self.ci_method = ci_method
        self.confidence = confidence
        self.keep = keep_episodes
        self.bclasses = [c for c in CLASSES if scenario["bystanders"][c]["rate_per_ms"] > 0]
        self.accs = {p: _Accumulator(self.bclasses) for p in self.policies}
        self.pairs = (
            {(a, b): _PairAccumulator() for i, a in enumerate(self.policies) for b in self.policies[i + 1 :]}
            if pairs
            else {}
        )
        self.parts: dict[str, list[np.ndarray]] = {p: [] for p in self.policies}
        self.limit = self.episodes if target is None else max(self.episodes, max_episodes or 100 * self.episodes)
        self.done = 0
        self.stop = "fixed" if target is None else "max_episodes"
        self.finished = False

    def chunks(self) -> list[tuple[int, int]]:
        """Every chunk ``(start, n)`` that may be needed, in order (with a target, up to the cap)."""
        return [(s, min(self.chunk_size, self.limit - s)) for s in range(0, self.limit, self.chunk_size)]

    def add(
        self, start: int, vals: dict[str, dict[str, np.ndarray]], rows: dict[str, np.ndarray] | None = None
    ) -> bool:
        """Add the next chunk (``vals[policy]`` from :func:`outcome_arrays`); return True when the point is done."""
        if self.finished:
            raise RuntimeError("chunk added to a finished point")
        if start != self.done:
            raise RuntimeError(f"chunk at episode {start} added out of order (expected {self.done})")
        n = 0
        for p in self.policies:
            self.accs[p].add(vals[p])
            n = len(vals[p]["exhausted"])
            if self.keep and rows is not None:
                self.parts[p].append(rows[p])
        for (a, b), acc in self.pairs.items():
            acc.add(vals[a], vals[b])
        self.done += n
        if self.target is not None and self.done >= self.episodes:
            from depletion.stats import meets_target

            t = self.target
            if all(
                meets_target(self.accs[p].estimate(o, self.confidence, self.ci_method), t.value, t.relative)
                for p in self.policies
                for o in t.outcomes
            ):
                self.stop = "target"
                self.finished = True
        if self.done >= self.limit:
            self.finished = True
        return self.finished

    def result(self) -> PointRun:
        """The finished point."""
        from depletion.engine import OUTCOLS

        kept: dict[str, dict[str, np.ndarray]] = {}
        if self.keep:
            for p in self.policies:
                allrows = np.concatenate(self.parts[p])
                kept[p] = {name: allrows[:, i] for i, name in enumerate(OUTCOLS)}
        return PointRun(self.done, self.stop, self.accs, self.pairs, kept)


def chunk_values(
    params: dict, policy: str, seed: int, start: int, n: int, bystander_classes: list[str], keep: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Simulate one chunk of one policy and reduce it to outcome arrays (a pure function: safe to run anywhere)."""
    from depletion.engine import build_inputs, simulate_rows

    rows = simulate_rows(build_inputs(params, policy), seed, start, n)
    return outcome_arrays(rows, bystander_classes), (rows if keep else None)


def run_point(st: PointState, seed: int, on_chunk: Callable[[int], None] | None = None) -> PointRun:
    """Run a point's chunks in this process, in order, until it is done.

    The in-process driver behind :func:`simulate` and sweeps (the Dask one
    is :func:`depletion.distributed.run_points`). Chunk ``k`` holds episodes
    ``[k * chunk_size, (k + 1) * chunk_size)`` for every policy (common
    random numbers), so paired statistics see each episode under each
    policy; with a target, :meth:`PointState.add` says when to stop, from
    the data alone.

    Parameters
    ----------
    st : PointState
        The point: scenario, policies, episodes, chunk size, target.
    seed : int
    on_chunk : callable, optional
        Called with the number of episodes just simulated (over all policies).

    Returns
    -------
    PointRun
    """
    from depletion.engine import build_inputs, simulate_rows

    inputs = {p: build_inputs(st.scenario.params, p) for p in st.policies}
    for start, n in st.chunks():
        rows = {p: simulate_rows(inputs[p], seed, start, n) for p in st.policies}
        vals = {p: outcome_arrays(r, st.bclasses) for p, r in rows.items()}
        done = st.add(start, vals, rows)
        if on_chunk is not None:
            on_chunk(n * len(st.policies))
        if done:
            break
    return st.result()


def check_options(
    episodes: Any, seed: Any, chunk_size: Any, ci_method: str, confidence: float, max_episodes: Any = None
) -> None:
    """Validate the run options shared by :func:`simulate` and sweeps (raises DepletionError)."""
    check_whole("episodes", episodes, 1)
    check_whole("seed", seed, 0, 2**64, "2**64")
    check_whole("chunk_size", chunk_size, 1)
    if max_episodes is not None and (
        not isinstance(max_episodes, (int, np.integer)) or isinstance(max_episodes, bool) or max_episodes < episodes
    ):
        raise DepletionError(f"max_episodes: expected a whole number >= episodes ({episodes}), got {max_episodes!r}")
    if ci_method not in CI_METHODS:
        raise DepletionError(f"ci_method: unknown {ci_method!r}; allowed: {', '.join(CI_METHODS)}")
    if not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise DepletionError(f"confidence: {confidence!r} must be a number in (0, 1)")


def check_policies(pols: list[str]) -> None:
    """Validate a list of policy names (raises DepletionError)."""
    if not pols:
        raise DepletionError("policies: give at least one policy")
    for p in pols:
        try:
            parse_policy(p)
        except ValueError as e:
            raise DepletionError(f"policy: {e}") from None
    if len(set(pols)) != len(pols):
        raise DepletionError(f"policy: listed twice in {pols}")


def simulate(
    scenario: Scenario | str | None = None,
    episodes: int = 100_000,
    seed: int = 0,
    policies: Iterable[str] | None = None,
    *,
    keep_episodes: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    ci_method: str = "wilson",
    confidence: float = 0.95,
    target_halfwidth: str | float | None = None,
    max_episodes: int | None = None,
    outcomes: Iterable[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
    **overrides: Any,
) -> Result:
    """Simulate ``episodes`` episodes of a scenario under each policy.

    Every policy runs the same episode indices with the same seed (common
    random numbers), in chunks of ``chunk_size`` so memory stays bounded;
    neither the chunk size nor the thread count changes any number. With two
    or more policies, the paired differences of every pair are estimated too.

    Parameters
    ----------
    scenario : Scenario, str or None
        A loaded scenario, a TOML path, or ``None`` for MODEL.md's defaults.
    episodes : int
        Episodes per policy (> 0); with ``target_halfwidth``, the least
        number simulated before the first stopping check.
    seed : int
        Seed, 0 <= seed < 2**64.
    policies : iterable of str, optional
        Policy names; default: the scenario's ``policies``.
    keep_episodes : bool
        Also return per-episode arrays in ``Result.episode_data``.
    chunk_size : int
        Episodes per kernel call (and per stopping check).
    ci_method : {"wilson", "clopper-pearson", "jeffreys"}
    confidence : float
        Interval level in (0, 1).
    target_halfwidth : str or float, optional
        Sequential stopping: add chunks until the interval half-width of
        every ``outcomes`` entry of every policy is at most this (``0.001``)
        or this fraction of the estimate (``"5%"``), or until
        ``max_episodes``. ``Result.stop`` says which.
    max_episodes : int, optional
        Cap for sequential stopping (default ``100 * episodes``).
    outcomes : iterable of str, optional
        Outcomes the stopping rule waits for (default: exhausted,
        victim_failed, stalled).
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk (``total`` is
        the cap when stopping sequentially).
    client : distributed.Client, optional
        Run the chunks on this Dask cluster (same answer, bit for bit).
    **overrides
        Parameter overrides by name (``threads=64``,
        ``**{"bystanders.atomic.rate_per_ms": 0}``).

    Returns
    -------
    Result

    Raises
    ------
    DepletionError
        For bad parameters, policies or options.
    """
    if scenario is None or isinstance(scenario, str):
        scenario = load_scenario(scenario)
    if overrides:
        scenario = scenario.with_overrides(overrides)
    check_options(episodes, seed, chunk_size, ci_method, confidence, max_episodes)
    target = parse_target(target_halfwidth, outcomes) if target_halfwidth is not None else None
    if target is None and (max_episodes is not None or outcomes is not None):
        raise DepletionError("max_episodes and outcomes go with target_halfwidth (sequential stopping)")
    pols = list(policies) if policies is not None else list(scenario["policies"])
    check_policies(pols)
    cap = episodes if target is None else (max_episodes or 100 * episodes)
    total = cap * len(pols)
    done = 0

    def on_chunk(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if client is not None and keep_episodes:
        raise DepletionError("keep_episodes: not available with a Dask client (the episodes stay on the workers)")
    st = PointState(
        scenario, pols, int(episodes), int(chunk_size), target=target, max_episodes=max_episodes,
        ci_method=ci_method, confidence=confidence, keep_episodes=keep_episodes,
    )  # fmt: skip
    if client is not None:
        from depletion.distributed import run_points

        box: list[PointRun] = []
        run_points(client, {0: st}, int(seed), lambda i, r: box.append(r), on_chunk)
        run = box[0]
    else:
        run = run_point(st, int(seed), on_chunk)
    return Result(
        int(seed), run.episodes, scenario, run.estimates(confidence, ci_method), run.kept, ci_method, confidence,
        pairs=run.pair_estimates(confidence), stop=run.stop, target=str(target) if target else None,
    )  # fmt: skip
