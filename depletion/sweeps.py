"""Sweeps: a grid of scenarios, every point and policy on common random numbers.

A grid is a list of axes, each a parameter name and its values; the points
are their product (the first axis varies slowest). ``policy`` is an axis
too, but policies are run together at each point so that their paired
differences are estimated on the same episodes. Every point uses the same
seed and episode indices, so neighbouring points differ only by the
parameter: curves are smooth and differences between points are paired too.

Axis syntax (``--grid`` or the scenario's ``[sweep]`` table)::

    threads=1,2,4,8                  a list (TOML values; bare words are text)
    threads=1..8                     integers 1, 2, ..., 8
    threads=1..1024:log2             1, 2, 4, ..., 1024 (each x2 from the start)
    memory_gib=1..1000:log10         1, 10, 100, 1000
    anon_fraction=0..1:11            11 evenly spaced values 0, 0.1, ..., 1
    policy=tif_memdie,fraction:0.25  policies

In a ``[sweep]`` table an axis is a TOML list or a range string, and the keys
``episodes``, ``seed``, ``chunk_size``, ``confidence``, ``ci_method``,
``target_halfwidth``, ``max_episodes`` and ``outcomes`` set run options.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depletion.config import BYSTANDER_KEYS, SPECS, Scenario, load_scenario
from depletion.errors import DepletionError
from depletion.semantics import CLASSES

#: ``[sweep]`` keys that are run options, not axes
OPTION_KEYS = {
    "episodes": 100_000,
    "seed": 0,
    "chunk_size": 1 << 16,
    "confidence": 0.95,
    "ci_method": "wilson",
    "target_halfwidth": None,
    "max_episodes": None,
    "outcomes": None,
}
POLICY_AXIS = ("policy", "policies")
MAX_POINTS = 100_000
#: the results file is rewritten at most this often (and always at the end / on interrupt)
SAVE_EVERY_S = float(os.environ.get("DEPLETION_SAVE_EVERY_S", "2.0"))


@dataclass(frozen=True)
class Axis:
    """One swept parameter and its values, in order."""

    name: str
    values: tuple


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes."""
    out, depth, cur, quote = [], 0, [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out]


def _scalar(name: str, txt: str) -> Any:
    try:
        return tomllib.loads(f"v = {txt}")["v"]
    except tomllib.TOMLDecodeError:
        if txt and all(ch.isalnum() or ch in "_:.-" for ch in txt):
            return txt
        raise DepletionError(
            f"grid {name}: {txt!r} is not a value (TOML syntax, e.g. 64, 0.5, true, alloc_oom)"
        ) from None


def _num(name: str, txt: str) -> int | float:
    v = _scalar(name, txt.strip())
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DepletionError(f"grid {name}: range end {txt!r} is not a number")
    return v


def _range(name: str, spec: str) -> list:
    """``a..b``, ``a..b:log2``, ``a..b:log10`` or ``a..b:N``."""
    body, _, mode = spec.partition(":")
    a_txt, _, b_txt = body.partition("..")
    a, b = _num(name, a_txt), _num(name, b_txt)
    if b < a:
        raise DepletionError(f"grid {name}={spec}: empty range ({b} < {a}); write it low..high")
    both_int = isinstance(a, int) and isinstance(b, int)
    mode = mode.strip()
    if mode == "":
        if not both_int:
            raise DepletionError(f"grid {name}={spec}: a..b needs whole numbers; use a..b:N for N evenly spaced values")
        vals: list = list(range(a, b + 1))
    elif mode in ("log2", "log10"):
        if a <= 0:
            raise DepletionError(f"grid {name}={spec}: a {mode} range needs a start > 0")
        f = 2 if mode == "log2" else 10
        vals, x = [], a
        while x <= b * (1 + 1e-12):
            vals.append(x)
            x = x * f
    elif mode.isdigit():
        k = int(mode)
        if k < 1 or (k == 1 and a != b):
            raise DepletionError(f"grid {name}={spec}: need at least 2 points for a range of width > 0")
        if k == 1:
            vals = [a]
        else:
            vals = [a + (b - a) * i / (k - 1) for i in range(k)]
            if both_int and all(abs(v - round(v)) < 1e-9 for v in vals):
                vals = [int(round(v)) for v in vals]
            else:
                vals = [float(round(v, 12)) for v in vals]
    else:
        raise DepletionError(
            f"grid {name}={spec}: unknown range step {mode!r}; allowed: a..b, a..b:log2, a..b:log10, a..b:N"
        )
    if len(vals) > MAX_POINTS:
        raise DepletionError(f"grid {name}={spec}: {len(vals)} values; at most {MAX_POINTS}")
    return vals


def parse_values(name: str, spec: Any) -> list:
    """The values of one axis from a TOML list, a single value or a text spec (list or range)."""
    if isinstance(spec, list):
        vals = list(spec)
    elif isinstance(spec, str):
        s = spec.strip()
        if not s:
            raise DepletionError(f"grid {name}: no values; give v1,v2,... or a range like 1..1024:log2")
        if ".." in s and not s.startswith(("{", "[", '"', "'")) and "," not in s:
            vals = _range(name, s)
        else:
            parts = _split_top(s)
            if any(p == "" for p in parts):
                raise DepletionError(f"grid {name}={spec}: empty value in the list")
            vals = [_scalar(name, p) for p in parts]
    else:
        vals = [spec]
    if not vals:
        raise DepletionError(f"grid {name}: no values")
    seen = set()
    for v in vals:
        key = json.dumps(v, sort_keys=True)
        if key in seen:
            raise DepletionError(f"grid {name}: value {v!r} is listed twice")
        seen.add(key)
    return vals


def _check_name(name: str) -> str:
    if name in POLICY_AXIS:
        return "policy"
    if name in SPECS and name != "policies":
        return name
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "bystanders" and parts[1] in CLASSES and parts[2] in BYSTANDER_KEYS:
        return name
    allowed = ", ".join(["policy", *sorted(k for k in SPECS if k != "policies"), "bystanders.CLASS.KEY"])
    raise DepletionError(f"grid: unknown parameter {name!r}; allowed: {allowed}")


def parse_axis(item: str) -> tuple[str, list]:
    """Parse one ``--grid name=spec`` into ``(name, values)``."""
    if "=" not in item:
        raise DepletionError(f"--grid {item!r}: expected name=v1,v2,... or name=a..b[:log2|:log10|:N]")
    name, spec = item.split("=", 1)
    name = _check_name(name.strip())
    return name, parse_values(name, spec)


def split_sweep_table(table: Any) -> tuple[dict[str, list], dict[str, Any]]:
    """Split a scenario's ``[sweep]`` table into axes and run options."""
    if table is None:
        return {}, {}
    if not isinstance(table, Mapping):
        raise DepletionError("sweep: expected a table of parameter = values (and run options)")
    axes: dict[str, list] = {}
    opts: dict[str, Any] = {}
    for k, v in table.items():
        if k in OPTION_KEYS:
            opts[k] = v
        else:
            name = _check_name(k)
            if name in axes:
                raise DepletionError(f"sweep: axis {name!r} given twice")
            axes[name] = parse_values(name, v)
    return axes, opts


# ------------------------------------------------------------------ running
@dataclass
class SweepResult:
    """A sweep's results: metadata and tidy rows (see :mod:`depletion.results`).

    Attributes
    ----------
    meta : dict
        Scenario, grid, points, policies, options, versions, command line.
    rows : list of dict
        One per (point, policy, outcome) and per (point, pair, outcome).
    path : Path or None
        The results file, if saved.
    """

    meta: dict
    rows: list[dict]
    path: Path | None = None
    _axis_names: list[str] = field(default_factory=list, repr=False)

    @property
    def axes(self) -> list[str]:
        """Swept parameter names (not ``policy``)."""
        return [a["name"] for a in self.meta["grid"]]

    @property
    def complete(self) -> bool:
        """Whether every point has been run."""
        return bool(self.meta.get("complete"))

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (needs pandas)."""
        import pandas as pd

        from depletion.results import columns

        return pd.DataFrame.from_records(self.rows, columns=columns(self.axes))

    def select(self, outcome: str, kind: str | None = None) -> list[dict]:
        """Rows of one outcome (and one kind, e.g. ``"proportion"``)."""
        return [r for r in self.rows if r["outcome"] == outcome and (kind is None or r["kind"] == kind)]

    def table(self, outcomes: Sequence[str] | None = None) -> str:
        """Text tables: per outcome, one row per point, one column per policy."""
        return format_show(self.meta, self.rows, outcomes)

    def compare(self, a: str, b: str, outcomes: Sequence[str] | None = None) -> str:
        """Text tables of the paired differences ``a - b`` at every point."""
        return format_compare(self.meta, self.rows, a, b, outcomes)

    def _repr_html_(self) -> str:
        from depletion.display import sweep_html

        return sweep_html(self)

    def __str__(self) -> str:
        return self.table()


def load_results(path: str | Path) -> SweepResult:
    """Read a results file (``.csv`` or ``.parquet``).

    Raises
    ------
    DepletionError
        If it is missing, truncated, corrupt or not a depletion results file.
    """
    from depletion.results import read_results

    meta, rows = read_results(path)
    return SweepResult(meta, rows, Path(path))


def _versions() -> dict[str, str]:
    import platform

    import numba
    import numpy

    from depletion import __version__

    return {"depletion": __version__, "numba": numba.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}  # fmt: skip


#: metadata keys that must match for ``--resume``
RUN_KEYS = (
    "scenario", "grid", "points", "policies", "seed", "episodes", "chunk_size", "confidence", "ci_method",
    "target_halfwidth", "max_episodes", "outcomes",
)  # fmt: skip


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v))


def point_rows(
    point: int, values: Sequence[Any], axis_names: Sequence[str], run: Any, confidence: float, ci_method: str
) -> list[dict]:
    """Tidy rows of one finished point (``run`` is a :class:`depletion.api.PointRun`)."""
    from depletion.results import STAT_COLUMNS
    from depletion.stats import QUANTILES

    base = {"point": point, **dict(zip(axis_names, values)), **dict.fromkeys(STAT_COLUMNS)}
    rows: list[dict] = []
    for pol, ests in run.estimates(confidence, ci_method).items():
        for name, e in ests.items():
            r = {**base, "policy": pol, "outcome": name, "n": e["n"], "stop": run.stop}
            if "p" in e:
                r.update(kind="proportion", estimate=e["p"], ci_low=e["ci_low"], ci_high=e["ci_high"], count=e["count"])
            else:
                r.update(kind="mean", estimate=e["mean"], ci_low=e["ci_low"], ci_high=e["ci_high"], sd=e["sd"])
                qci = e.get("quantile_ci", {})
                for q in QUANTILES:
                    tag = f"q{round(q * 100)}"
                    r[tag] = e["quantiles"][str(q)]
                    if str(q) in qci:
                        r[f"{tag}_low"], r[f"{tag}_high"] = qci[str(q)]
            rows.append(r)
    for pr in run.pair_estimates(confidence):
        for name, e in pr["outcomes"].items():
            r = {**base, "policy": pr["a"], "vs": pr["b"], "outcome": name, "n": e["n"], "stop": run.stop,
                 "estimate": e["diff"], "ci_low": e["ci_low"], "ci_high": e["ci_high"]}  # fmt: skip
            if "n10" in e:
                r.update(kind="paired_diff", n11=e["n11"], n10=e["n10"], n01=e["n01"], n00=e["n00"],
                         mcnemar_p=e["mcnemar_p"])  # fmt: skip
            else:
                r.update(kind="paired_mean_diff", sd=e["sd"])
            rows.append(r)
    return rows


def _resolve_options(scenario: Scenario, given: Mapping[str, Any]) -> dict[str, Any]:
    _, file_opts = split_sweep_table(scenario.extra.get("sweep"))
    opts = dict(OPTION_KEYS)
    opts.update(file_opts)
    opts.update({k: v for k, v in given.items() if v is not None})
    return opts


def run_sweep(
    scenario: Scenario | str | Path | None = None,
    grid: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    policies: Sequence[str] | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    target_halfwidth: str | float | None = None,
    max_episodes: int | None = None,
    outcomes: Sequence[str] | None = None,
    ci_method: str | None = None,
    confidence: float | None = None,
    chunk_size: int | None = None,
    progress: Callable[[dict], None] | None = None,
    command: Sequence[str] | None = None,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> SweepResult:
    """Run a sweep: every grid point under every policy, on common random numbers.

    Parameters
    ----------
    scenario : Scenario, path or None
        Base scenario; its ``[sweep]`` table gives default axes and options.
    grid : mapping or iterable of str, optional
        Axes as ``{name: values}`` (a list or a spec string) or
        ``["name=spec", ...]``; they replace same-named axes of the
        scenario's ``[sweep]`` table and add to the others.
    policies : sequence of str, optional
        Policies when the grid has no ``policy`` axis (default: the scenario's).
    episodes, seed, target_halfwidth, max_episodes, outcomes, ci_method, confidence, chunk_size
        As in :func:`depletion.simulate`; ``None`` takes the ``[sweep]``
        table's value, then the built-in default.
    out : str or Path, optional
        Results file (``.csv`` or ``.parquet``), rewritten atomically as
        points finish, so an interrupted sweep keeps every finished point.
    resume : bool
        Continue the sweep in ``out``: its scenario, grid and options must
        match; finished points are kept and the rest are run. The final file
        is identical to an uninterrupted run's.
    progress : callable, optional
        Called with a dict (``points_done``, ``points_total``,
        ``point_fraction``, ``episodes``, ``elapsed_s``) after each chunk.
    command : sequence of str, optional
        The command line to record in the metadata.
    client : distributed.Client, optional
        Run the chunks on this Dask cluster.
    workers : int, optional
        Start a local Dask cluster of this many worker processes.
    scheduler : str, optional
        Use the Dask cluster at this address (``tcp://host:8786``).
        With any of the three, the results are identical to the in-process
        run's (see :mod:`depletion.distributed`).

    Returns
    -------
    SweepResult

    Raises
    ------
    DepletionError
        For a bad grid, option or scenario, an unreadable ``out`` on resume,
        or a resume against a different sweep.
    """
    from depletion.api import PointState, check_options, check_policies, parse_target, run_point
    from depletion.distributed import cluster, run_points

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    file_axes, _ = split_sweep_table(scenario.extra.get("sweep"))
    axes = dict(file_axes)
    if grid is not None:
        items = grid.items() if isinstance(grid, Mapping) else (parse_axis(g) for g in grid)
        for name, spec in items:
            name = _check_name(name)
            axes[name] = parse_values(name, spec)
    opts = _resolve_options(
        scenario,
        dict(episodes=episodes, seed=seed, target_halfwidth=target_halfwidth, max_episodes=max_episodes,
             outcomes=outcomes, ci_method=ci_method, confidence=confidence, chunk_size=chunk_size),
    )  # fmt: skip
    check_options(opts["episodes"], opts["seed"], opts["chunk_size"], opts["ci_method"], opts["confidence"],
                  opts["max_episodes"])  # fmt: skip
    target = None
    if opts["target_halfwidth"] is not None:
        target = parse_target(opts["target_halfwidth"], opts["outcomes"])
    elif opts["max_episodes"] is not None or opts["outcomes"] is not None:
        raise DepletionError("max_episodes and outcomes go with target_halfwidth (sequential stopping)")
    if "policy" in axes:
        if policies:
            raise DepletionError("policy: give policies either as a grid axis or with --policy, not both")
        pols = [str(p) for p in axes.pop("policy")]
    else:
        pols = list(policies) if policies else list(scenario["policies"])
    check_policies(pols)
    names = list(axes)
    points = [list(p) for p in itertools.product(*(axes[n] for n in names))] if names else [[]]
    if len(points) > MAX_POINTS:
        raise DepletionError(f"grid: {len(points)} points; at most {MAX_POINTS}")
    # validate every point before running any
    scenarios = []
    for vals in points:
        try:
            scenarios.append(scenario.with_overrides(dict(zip(names, vals))))
        except DepletionError as e:
            where = ", ".join(f"{n}={v}" for n, v in zip(names, vals))
            raise DepletionError(f"grid point {where}: {e}") from None
    meta: dict[str, Any] = {
        "scenario": _jsonable(scenario.to_dict()),
        "scenario_name": scenario.name,
        "scenario_source": scenario.source,
        "grid": [{"name": n, "values": _jsonable(axes[n])} for n in names],
        "points": _jsonable(points),
        "policies": pols,
        "seed": int(opts["seed"]),
        "episodes": int(opts["episodes"]),
        # the chunk size changes no number of a fixed-size run (only where a sequential rule looks)
        "chunk_size": int(opts["chunk_size"]) if target else None,
        "confidence": float(opts["confidence"]),
        "ci_method": opts["ci_method"],
        "target_halfwidth": str(target) if target else None,
        "target_relative": target.relative if target else None,
        "max_episodes": (opts["max_episodes"] or 100 * int(opts["episodes"])) if target else None,
        "outcomes": list(target.outcomes) if target else None,
        "versions": _versions(),
        "command": list(command) if command is not None else None,
        "complete": False,
    }
    rows: list[dict] = []
    done: set[int] = set()
    path = Path(out) if out is not None else None
    if path is not None and path.suffix not in (".csv", ".parquet"):
        raise DepletionError(f"{path}: results file name must end in .csv or .parquet")
    if resume:
        if path is None:
            raise DepletionError("--resume needs the results file (--out) of the sweep to finish")
        meta, rows, done = _resume_state(path, meta)
    elif path is not None and path.exists():
        raise DepletionError(f"{path}: already exists; use --resume to finish it, or remove it / pick another --out")
    result = SweepResult(meta, rows, path)
    todo = [i for i in range(len(points)) if i not in done]
    t0 = time.monotonic()
    eps = 0
    last_save = t0
    per_point = int(opts["episodes"]) * len(pols)

    def report(frac: float) -> None:
        if progress is not None:
            progress({"points_done": len(done), "points_total": len(points), "point_fraction": frac,
                      "episodes": eps, "elapsed_s": time.monotonic() - t0})  # fmt: skip

    def save(final: bool = False) -> None:
        if path is not None:
            from depletion.results import write_results

            meta["complete"] = len(done) == len(points)
            result.rows = sorted(rows, key=lambda r: r["point"])  # rows of a point stay in their order
            write_results(path, meta, names, result.rows)

    conf, method = float(opts["confidence"]), opts["ci_method"]

    def finished(i: int, run: Any) -> None:
        nonlocal last_save
        rows.extend(point_rows(i, points[i], names, run, conf, method))
        done.add(i)
        report(0.0)
        now = time.monotonic()
        if now - last_save >= SAVE_EVERY_S:
            save()
            last_save = now

    def state(i: int) -> Any:
        return PointState(
            scenarios[i], pols, int(opts["episodes"]), int(opts["chunk_size"]), target=target,
            max_episodes=meta["max_episodes"], ci_method=method, confidence=conf,
        )  # fmt: skip

    # a SIGTERM (kill) ends the sweep like Ctrl-C: finished points are saved first
    old = signal.getsignal(signal.SIGTERM)
    if old is not None:
        try:
            signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread
            old = None
    try:
        report(0.0)
        with cluster(workers, scheduler, client) as cl:
            if cl is not None:

                def on_any_chunk(n: int) -> None:
                    nonlocal eps
                    eps += n
                    report(0.0)

                run_points(cl, {i: state(i) for i in todo}, int(opts["seed"]), finished, on_any_chunk)
            else:
                for i in todo:
                    part = 0

                    def on_chunk(n: int) -> None:
                        nonlocal eps, part
                        eps += n
                        part += n
                        report(min(part / per_point, 0.99) if target is None else 0.5)

                    finished(i, run_point(state(i), int(opts["seed"]), on_chunk))
    except KeyboardInterrupt:
        save()
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    save(final=True)
    meta["complete"] = True
    result.rows = sorted(rows, key=lambda r: r["point"])
    return result


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _resume_state(path: Path, meta: dict) -> tuple[dict, list[dict], set[int]]:
    from depletion.results import read_results

    if not path.exists():
        raise DepletionError(f"{path}: no such results file to resume")
    old, rows = read_results(path)
    diff = [k for k in RUN_KEYS if old.get(k) != meta.get(k)]
    if diff:
        raise DepletionError(
            f"--resume: {path} was made by a different sweep (differs in: {', '.join(diff)}); "
            "resume with the same scenario, grid and options, or write to another --out"
        )
    done = {r["point"] for r in rows}
    # keep the original provenance (command line, versions): the finished file matches an uninterrupted run's
    return old, rows, done


# ------------------------------------------------------------------ text output
def _label(meta: dict, r: dict) -> list[str]:
    out = []
    for a in meta["grid"]:
        v = r[a["name"]]
        out.append(v if isinstance(v, str) else json.dumps(v) if isinstance(v, (dict, list)) else f"{v:g}")
    return out


def _fmt_cell(r: dict) -> str:
    from depletion.api import _fmt_n, _fmt_p

    if r["kind"] == "proportion":
        return f"{_fmt_p(r['estimate'])} [{_fmt_p(r['ci_low'])}, {_fmt_p(r['ci_high'])}] ({r['count']}/{r['n']})"
    return f"{_fmt_n(r['estimate'])} ±{_fmt_n(r['ci_high'] - r['estimate'])}"


def _header(meta: dict) -> str:
    n = len(meta["points"])
    grid = ", ".join(f"{a['name']} ({len(a['values'])})" for a in meta["grid"]) or "no axes"
    state = "complete" if meta.get("complete") else "INCOMPLETE (finish with --resume)"
    stop = f", sequential to half-width {meta['target_halfwidth']}" if meta.get("target_halfwidth") else ""
    return (
        f"sweep of {meta.get('scenario_name')}: {n} points over {grid}; policies {', '.join(meta['policies'])}; "
        f"{meta['episodes']} episodes{stop}, seed {meta['seed']}, {meta['confidence'] * 100:g}% "
        f"{meta['ci_method']} intervals; {state}"
    )


def _outcomes_of(rows: Sequence[dict], kinds: tuple[str, ...], outcomes: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(r["outcome"] for r in rows if r["kind"] in kinds))
    if outcomes is None:
        return present
    for o in outcomes:
        if o not in present:
            raise DepletionError(f"outcome: {o!r} is not in the results; allowed: {', '.join(present)}")
    return list(outcomes)


def outcome_table(meta: dict, rows: Sequence[dict], outcome: str) -> list[tuple[dict, dict[str, dict]]]:
    """One outcome's estimates by point: ``[(any row of the point, {policy: row}), ...]`` in point order."""
    by: dict[int, dict[str, dict]] = {}
    for r in rows:
        if r["outcome"] == outcome and r["kind"] in ("proportion", "mean"):
            by.setdefault(r["point"], {})[r["policy"]] = r
    return [(next(iter(by[p].values())), by[p]) for p in sorted(by)]


def shown_outcomes(rows: Sequence[dict], outcomes: Sequence[str] | None) -> list[str]:
    """The outcomes to show: those asked for (checked), else the proportions, else all."""
    from depletion.api import PROPORTIONS

    outs = _outcomes_of(rows, ("proportion", "mean"), outcomes if outcomes else None)
    if not outcomes:
        outs = [o for o in outs if o in PROPORTIONS] or outs
    return outs


def format_show(meta: dict, rows: Sequence[dict], outcomes: Sequence[str] | None = None) -> str:
    """Per outcome, a table with one row per point and one column per policy."""
    from depletion.api import _grid

    pols = meta["policies"]
    axes = [a["name"] for a in meta["grid"]]
    lines = [_header(meta)]
    for o in shown_outcomes(rows, outcomes):
        table = []
        for first, by in outcome_table(meta, rows, o):
            star = "" if first["stop"] != "max_episodes" else " *"
            table.append([*_label(meta, first), *(_fmt_cell(by[q]) + star if q in by else "" for q in pols)])
        lines += ["", f"{o}:", *_grid([*axes, *pols] if axes else pols, table)]
    if any(r["stop"] == "max_episodes" for r in rows):
        lines += ["", "* max_episodes reached before the target half-width"]
    return "\n".join(lines)


def format_compare(meta: dict, rows: Sequence[dict], a: str, b: str, outcomes: Sequence[str] | None = None) -> str:
    """Per point, the paired difference ``a - b`` of each outcome, with McNemar's exact p for proportions."""
    from depletion.api import PROPORTIONS, _fmt_diff, _grid, flip_diff

    pols = meta["policies"]
    for p in (a, b):
        if p not in pols:
            raise DepletionError(f"compare: policy {p!r} is not in the results; allowed: {', '.join(pols)}")
    if a == b:
        raise DepletionError("compare: --a and --b must be two different policies")
    outs = _outcomes_of(rows, ("paired_diff", "paired_mean_diff"), outcomes if outcomes else None)
    if not outcomes:
        outs = [o for o in outs if o in PROPORTIONS] or outs
    axes = [x["name"] for x in meta["grid"]]
    lines = [_header(meta), f"paired differences {a} - {b} (same episodes)"]
    for o in outs:
        table = []
        for r in rows:
            if r["outcome"] != o or r["kind"] not in ("paired_diff", "paired_mean_diff"):
                continue
            if (r["policy"], r["vs"]) not in ((a, b), (b, a)):
                continue
            e = {"diff": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
            if r["kind"] == "paired_diff":
                e.update(n10=r["n10"], n01=r["n01"], mcnemar_p=r["mcnemar_p"])
            if r["policy"] != a:
                e = flip_diff(e)
            table.append([*_label(meta, r), _fmt_diff(e), str(r["n"])])
        head = [*axes, "difference [interval] (discordant a/b, McNemar p)", "n"]
        lines += ["", f"{o}:", *_grid(head, table)]
    return "\n".join(lines)
