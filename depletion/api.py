"""The Python API: one code path for the CLI, TOML scenarios and Jupyter.

>>> import depletion
>>> sc = depletion.load_scenario("configs/tetsuo-1000-threads.toml")
>>> res = depletion.simulate(sc, episodes=10_000, seed=1, policies=["tif_memdie", "alloc_oom"])
>>> res.policies["alloc_oom"]["exhausted"]["p"]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depletion.config import Scenario, load_scenario
from depletion.errors import DepletionError
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"seed", "episodes", "scenario", "policies"}``."""
        return {
            "seed": self.seed,
            "episodes": self.episodes,
            "ci_method": self.ci_method,
            "confidence": self.confidence,
            "scenario": self.scenario.to_dict(),
            "policies": self.policies,
        }

    def to_json(self, **kw: Any) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **kw)

    def table(self) -> str:
        """A readable text table: one row per outcome, one column per policy."""
        pols = list(self.policies)
        rows: list[list[str]] = []
        first = next(iter(self.policies.values()))
        for name in first:
            row = [name]
            for p in pols:
                e = self.policies[p][name]
                if "p" in e:
                    row.append(f"{_fmt_p(e['p'])} [{_fmt_p(e['ci_low'])}, {_fmt_p(e['ci_high'])}] ({e['count']})")
                else:
                    q = e["quantiles"]
                    row.append(
                        f"{_fmt_n(e['mean'])} ±{_fmt_n(e['ci_high'] - e['mean'])}"
                        f" (p50 {_fmt_n(q['0.5'])}, p99 {_fmt_n(q['0.99'])})"
                    )
            rows.append(row)
        head = ["outcome", *pols]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = [
            f"scenario {self.scenario.name}: {self.episodes} episodes, seed {self.seed}, "
            f"{int(self.confidence * 100)}% {self.ci_method} intervals for proportions",
            "  ".join(h.ljust(w) for h, w in zip(head, widths)),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(self.table()) + "</pre>"

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


class _Accumulator:
    """All outcome accumulators of one policy."""

    def __init__(self, bystander_classes: Iterable[str]) -> None:
        self.props = {k: ProportionAcc() for k in PROPORTIONS}
        self.nums = {k: NumericAcc(integer=v) for k, v in NUMBERS.items()}
        self.bclasses = list(bystander_classes)
        for c in self.bclasses:
            self.nums[f"bystander_failures.{c}"] = NumericAcc(integer=True)

    def add(self, rows: np.ndarray) -> None:
        from depletion.engine import COL

        col = {k: rows[:, i] for k, i in COL.items()}
        self.props["exhausted"].add(col["exhausted"])
        self.props["stalled"].add(col["stalled"])
        self.props["victim_failed"].add(col["victim_failures"] > 0)
        self.props["reaper_gave_up"].add(col["reaper_gave_up"])
        bf = np.zeros(rows.shape[0], dtype=bool)
        for c in CLASSES:
            bf |= col[f"bystander_failures.{c}"] > 0
        self.props["bystander_failed"].add(bf)
        for k in NUMBERS:
            if k == "min_free_frac":
                self.nums[k].add(col["min_free"] / np.maximum(col["W"], 1))
            else:
                self.nums[k].add(col[k])
        for c in self.bclasses:
            self.nums[f"bystander_failures.{c}"].add(col[f"bystander_failures.{c}"])

    def estimates(self, confidence: float, method: str) -> dict[str, dict]:
        out: dict[str, dict] = {k: a.estimate(confidence, method) for k, a in self.props.items()}  # type: ignore[arg-type]
        out.update({k: a.estimate(confidence) for k, a in self.nums.items()})
        return out


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
    progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> Result:
    """Simulate ``episodes`` episodes of a scenario under each policy.

    Every policy runs the same episode indices with the same seed (common
    random numbers), in chunks of ``chunk_size`` so memory stays bounded;
    neither the chunk size nor the thread count changes any number.

    Parameters
    ----------
    scenario : Scenario, str or None
        A loaded scenario, a TOML path, or ``None`` for MODEL.md's defaults.
    episodes : int
        Episodes per policy (> 0).
    seed : int
        Seed, 0 <= seed < 2**64.
    policies : iterable of str, optional
        Policy names; default: the scenario's ``policies``.
    keep_episodes : bool
        Also return per-episode arrays in ``Result.episode_data``.
    chunk_size : int
        Episodes per kernel call.
    ci_method : {"wilson", "clopper-pearson", "jeffreys"}
    confidence : float
        Interval level in (0, 1).
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk.
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
    from depletion.engine import OUTCOLS, build_inputs, simulate_rows

    if scenario is None or isinstance(scenario, str):
        scenario = load_scenario(scenario)
    if overrides:
        scenario = scenario.with_overrides(overrides)
    if not isinstance(episodes, (int, np.integer)) or isinstance(episodes, bool) or episodes < 1:
        raise DepletionError(f"episodes: expected a whole number >= 1, got {episodes!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise DepletionError(f"seed: expected a whole number in [0, 2**64), got {seed!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise DepletionError(f"chunk_size: expected a whole number >= 1, got {chunk_size!r}")
    if ci_method not in CI_METHODS:
        raise DepletionError(f"ci_method: unknown {ci_method!r}; allowed: {', '.join(CI_METHODS)}")
    if not 0.0 < confidence < 1.0:
        raise DepletionError(f"confidence: {confidence} must be in (0, 1)")
    pols = list(policies) if policies is not None else list(scenario["policies"])
    if not pols:
        raise DepletionError("policies: give at least one policy")
    for p in pols:
        try:
            parse_policy(p)
        except ValueError as e:
            raise DepletionError(f"policy: {e}") from None
    if len(set(pols)) != len(pols):
        raise DepletionError(f"policy: listed twice in {pols}")
    bclasses = [c for c in CLASSES if scenario["bystanders"][c]["rate_per_ms"] > 0]
    results: dict[str, dict[str, dict]] = {}
    kept: dict[str, dict[str, np.ndarray]] = {}
    total = episodes * len(pols)
    done = 0
    for p in pols:
        inputs = build_inputs(scenario.params, p)
        acc = _Accumulator(bclasses)
        parts: list[np.ndarray] = []
        start = 0
        while start < episodes:
            n = min(chunk_size, episodes - start)
            rows = simulate_rows(inputs, seed, start, n)
            acc.add(rows)
            if keep_episodes:
                parts.append(rows)
            start += n
            done += n
            if progress is not None:
                progress(done, total)
        results[p] = acc.estimates(confidence, ci_method)
        if keep_episodes:
            allrows = np.concatenate(parts)
            kept[p] = {name: allrows[:, i] for i, name in enumerate(OUTCOLS)}
    return Result(int(seed), int(episodes), scenario, results, kept, ci_method, confidence)
