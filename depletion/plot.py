"""Figures of sweep results: curves, heatmaps, paired differences and distributions.

Every function takes a :class:`depletion.sweeps.SweepResult` (from
:func:`depletion.load_results` or :func:`depletion.sweep`), draws into the
``ax`` given (or a new figure of paper width) and returns the artists it
made as a :class:`PlotArtists`, so a caller can restyle them or check what
was drawn:

* :func:`plot_curve`: an outcome against a swept parameter, one line per
  policy, with interval bands; log axes where the values span decades; zero
  counts drawn as upper bounds (a downward caret at the interval's upper end);
* :func:`plot_heatmap`: an outcome over two swept parameters, one panel per
  policy and outcome;
* :func:`plot_diff`: the paired difference between two policies with its
  interval;
* :func:`plot_cdf`: the distribution of a numeric outcome per policy from the
  file's quantiles (q50, q90, q99 and their intervals as step points), and
  :func:`plot_cdf_episodes` the full empirical CDF of a
  :class:`depletion.Result` simulated with ``keep_episodes=True``;
* :func:`plot` picks the kind that suits a results file, and
  :func:`save_figure` writes PDF (Type 42 fonts) and PNG (300 dpi) with the
  command and the results file in the files' metadata.

The style (``depletion/styles/depletion.mplstyle``: Okabe-Ito colours, a line
style and marker per policy so the figures read in greyscale, no LaTeX) is
applied with ``matplotlib.style.context`` inside each function, never at
import: importing this module changes no ``matplotlib.rcParams`` (and does
not even import matplotlib).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depletion.errors import DepletionError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from depletion.api import Result
    from depletion.sweeps import SweepResult

#: plot kinds of ``depletion plot --kind``
KINDS = ("curve", "heatmap", "diff", "cdf", "timeline")
#: figure widths in inches: one column and two columns of a paper
WIDTHS = {"one": 3.5, "two": 7.16}
#: file formats :func:`save_figure` writes
FORMATS = ("pdf", "png", "svg")
#: outcomes :func:`plot_cdf` draws when none is named
CDF_OUTCOMES = ("min_free_frac", "resolve_us")
#: quantile levels stored in results files
QUANTILE_LEVELS = ((0.5, "q50"), (0.9, "q90"), (0.99, "q99"))
STYLE_FILE = "depletion.mplstyle"
#: a downward caret whose base is at the data point (an upper bound)
UPPER_BOUND_MARKER = 7  # matplotlib.markers.CARETDOWNBASE
#: a right-pointing caret (an interval with no upper end)
OPEN_RIGHT_MARKER = 5  # matplotlib.markers.CARETRIGHTBASE
BAND_ALPHA = 0.2
MAX_PANELS = 12

#: axis labels of outcomes (with units)
OUTCOME_LABELS = {
    "exhausted": "P(reserves exhausted)",
    "stalled": "P(victim stalled)",
    "victim_failed": "P(a victim allocation failed)",
    "reaper_gave_up": "P(OOM reaper gave up)",
    "bystander_failed": "P(a bystander allocation failed)",
    "min_free": "lowest free memory (pages)",
    "min_free_frac": "lowest free memory / W (min watermark)",
    "victim_failures": "failed victim allocations per episode",
    "max_stall_us": "longest victim wait (µs)",
    "resolve_us": "time until the victims' memory is free (µs)",
    "full_reserve_threads": "threads with full reserve access",
    "oom_rekills": "OOM rekill passes per episode",
}
#: short names of outcomes (legends, panel titles)
OUTCOME_SHORT = {
    "exhausted": "exhausted",
    "stalled": "stalled",
    "victim_failed": "victim failed",
    "reaper_gave_up": "reaper gave up",
    "bystander_failed": "bystander failed",
    "min_free_frac": "min free / W",
    "resolve_us": "time to free",
    "max_stall_us": "longest wait",
}
#: axis labels of parameters (with units)
PARAM_LABELS = {
    "threads": "threads per victim",
    "victims": "victim processes",
    "memory_gib": "memory (GiB)",
    "mm_sharers": "extra processes sharing the mm",
    "rss_pages": "victim RSS (pages)",
    "anon_fraction": "reapable fraction of RSS",
    "in_allocator_frac": "P(thread mid-allocation at the kill)",
    "wake_us": "time to start exiting (µs)",
    "exit_allocs": "allocations on the way out",
    "exit_gap_us": "gap between exit allocations (µs)",
    "hold_us": "allocation hold time (µs)",
    "stack_pages": "pages freed at thread exit",
    "teardown_pages_per_us": "exit_mmap rate (pages/µs)",
    "reaper_delay_us": "OOM reaper delay (µs)",
    "reaper_lock_p": "P(reaper takes mmap_lock)",
    "reaper_retry_us": "reaper retry sleep (µs)",
    "reaper_retries": "reaper attempts",
    "reap_pages_per_us": "reap rate (pages/µs)",
    "reclaim_round_us": "reclaim round (µs)",
    "reclaim_rounds": "reclaim rounds before OOM",
    "oom_lock_hold_us": "oom_lock hold (µs)",
    "min_free_kbytes": "min_free_kbytes (KiB)",
    "watermark_scale_factor": "watermark_scale_factor",
    "fraction": "reserve fraction X (share of min watermark)",
    "policy": "policy",
}


@dataclass
class PlotArtists:
    """What a plot function drew.

    Dictionaries are keyed by the series label (a policy, an outcome or a
    value of another swept parameter), prefixed with the panel title and
    ``" / "`` when the figure has several panels.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    axes : list of matplotlib.axes.Axes
        The panels, in drawing order.
    lines : dict
        Estimate lines (``Line2D``; for CDFs the step lines).
    bands : dict
        Interval bands (``PolyCollection``).
    bounds : dict
        Upper-bound markers of zero counts (``Line2D``), only for series with some.
    errorbars : dict
        Interval bars (``ErrorbarContainer``) of categorical or quantile points.
    references : dict
        Horizontal reference lines (policies that are not on the x axis).
    images : dict
        Heatmap cells (``QuadMesh``), keyed by panel title.
    texts : list
        Cell annotations of heatmaps.
    colorbar : matplotlib.colorbar.Colorbar or None
    legend : matplotlib.legend.Legend or None
    kind : str
        ``curve``, ``heatmap``, ``diff``, ``cdf`` or ``cdf_episodes``.
    """

    figure: Any
    axes: list = field(default_factory=list)
    lines: dict = field(default_factory=dict)
    bands: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)
    errorbars: dict = field(default_factory=dict)
    references: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    texts: list = field(default_factory=list)
    colorbar: Any = None
    legend: Any = None
    kind: str = ""


# ------------------------------------------------------------------ style
def style_path() -> Path:
    """The package's matplotlib style file."""
    from importlib.resources import files

    return Path(str(files("depletion") / "styles" / STYLE_FILE))


@contextlib.contextmanager
def style() -> Iterator[None]:
    """A context in which matplotlib uses depletion's style (rcParams restored on exit)."""
    import matplotlib.style

    with matplotlib.style.context(str(style_path())):
        yield


def series_style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of the ``index``-th series (from the style's property cycle).

    Call inside :func:`style`. Policies keep their index in the results
    file, so a policy looks the same in every figure of that file.
    """
    import matplotlib as mpl

    cycle = list(mpl.rcParams["axes.prop_cycle"])
    return dict(cycle[index % len(cycle)])


def _new_figure(panels: int, width: str, *, aspect: float = 0.74, sharey: bool = False) -> tuple[Figure, list[Axes]]:
    import matplotlib.pyplot as plt

    if width not in WIDTHS:
        raise DepletionError(f"--width: unknown {width!r}; allowed: {', '.join(WIDTHS)}")
    w = WIDTHS[width]
    ncols = min(panels, 4 if width == "two" else 2)
    nrows = math.ceil(panels / ncols)
    h = max(2.1, w / ncols * aspect) * nrows if panels > 1 else w * aspect
    if panels > 1 and nrows == 1:
        h += 0.35  # the legend below the panels
    fig, axs = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False, sharey=sharey)
    flat = list(axs.ravel())
    for extra in flat[panels:]:
        extra.remove()
    return fig, flat[:panels]


def subplots(nrows: int = 1, ncols: int = 1, *, width: str = "one", height: float | None = None, **kw: Any) -> Any:
    """``matplotlib.pyplot.subplots`` in depletion's style, at paper width, for the ``ax=`` of the plot functions.

    Parameters
    ----------
    nrows, ncols : int
    width : {"one", "two"}
        One column (3.5 in) or two (7.16 in) wide.
    height : float, optional
        Height in inches (default: 0.74 of a panel's width per row).
    **kw
        Passed to ``pyplot.subplots`` (``sharey=True``, ...).

    Returns
    -------
    (Figure, Axes or array of Axes)
    """
    import matplotlib.pyplot as plt

    if width not in WIDTHS:
        raise DepletionError(f"--width: unknown {width!r}; allowed: {', '.join(WIDTHS)}")
    w = WIDTHS[width]
    h = height if height is not None else max(2.1, w / ncols * 0.74) * nrows
    with style():
        return plt.subplots(nrows, ncols, figsize=(w, h), **kw)


def _given_axes(ax: Any, panels: int) -> list[Axes]:
    if isinstance(ax, (list, tuple)) or hasattr(ax, "ravel"):
        axes = list(ax.ravel()) if hasattr(ax, "ravel") else list(ax)
    else:
        axes = [ax]
    if len(axes) != panels:
        raise DepletionError(
            f"ax: this figure has {panels} panels but {len(axes)} axes were given; pass {panels} axes, or fix the "
            "other swept parameters with where= (--where)"
        )
    return axes


# ------------------------------------------------------------------ labels
def outcome_label(outcome: str) -> str:
    """Axis label of an outcome, with units."""
    if outcome in OUTCOME_LABELS:
        return OUTCOME_LABELS[outcome]
    if outcome.startswith("bystander_failures."):
        return f"failed {outcome.split('.', 1)[1]} bystander allocations per episode"
    return outcome


def param_label(name: str) -> str:
    """Axis label of a swept parameter, with units."""
    if name in PARAM_LABELS:
        return PARAM_LABELS[name]
    if name.startswith("bystanders."):
        _, cls, key = name.split(".")
        unit = {"rate_per_ms": "per ms", "hold_us": "µs"}.get(key)
        return f"{cls} bystander {key.replace('_', ' ')}" + (f" ({unit})" if unit else "")
    for suffix, unit in (("_us", "µs"), ("_ms", "ms"), ("_gib", "GiB"), ("_pages", "pages")):
        if name.endswith(suffix):
            return f"{name[: -len(suffix)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return f"{v:g}"
    if isinstance(v, dict):
        if v.get("dist") == "fixed":
            return _fmt_value(v.get("value"))
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _assign(name: str, v: Any) -> str:
    unit = {"memory_gib": " GiB"}.get(name, " µs" if name.endswith("_us") else "")
    return f"{name} = {_fmt_value(v)}{unit}"


def _param_value(meta: dict, name: str) -> Any:
    sc = meta.get("scenario", {})
    if name.startswith("bystanders."):
        _, cls, key = name.split(".")
        return sc.get("bystanders", {}).get(cls, {}).get(key)
    return sc.get(name)


def scenario_note(result: SweepResult, fixed: Mapping[str, Any] | None = None, rows: Sequence[dict] = ()) -> str:
    """A one-line description of a figure's scenario: name, key parameters, episodes, seed.

    Swept parameters are left out unless ``fixed`` (a panel's or a
    ``where`` value) gives them one value.
    """
    meta = result.meta
    fixed = dict(fixed or {})
    swept = set(result.axes)
    parts = []
    for key in ("memory_gib", "threads", "victims"):
        if key in fixed or key in swept:
            continue
        v = _param_value(meta, key)
        if v is None or (key == "victims" and v == 1):
            continue
        parts.append(f"{_fmt_value(v)} GiB" if key == "memory_gib" else f"{_fmt_value(v)} {key}")
    parts += [_assign(k, v) for k, v in fixed.items()]
    ns = sorted({r["n"] for r in rows if r.get("n")})
    if ns:
        eps = f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}-{ns[-1]:,}"
        parts.append(f"{eps} episodes" + (" (sequential)" if meta.get("target_halfwidth") else ""))
    else:
        parts.append(f"{meta.get('episodes', 0):,} episodes")
    parts.append(f"seed {meta.get('seed')}")
    return f"{meta.get('scenario_name', 'sweep')}: " + ", ".join(parts)


# ------------------------------------------------------------------ selecting rows
def _same(a: Any, b: Any) -> bool:
    na = isinstance(a, (int, float)) and not isinstance(a, bool)
    nb = isinstance(b, (int, float)) and not isinstance(b, bool)
    if na and nb:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _where(result: SweepResult, where: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """Validate ``where`` (``{name: value}`` or ``["name=value", ...]``) against the grid."""
    from depletion.sweeps import parse_values

    if not where:
        return {}
    grid = {a["name"]: a["values"] for a in result.meta["grid"]}
    items: list[tuple[str, Any]] = []
    if isinstance(where, Mapping):
        items = list(where.items())
    else:
        for it in where:
            if "=" not in it:
                raise DepletionError(f"--where {it!r}: expected name=value (a swept parameter and one of its values)")
            name, txt = (s.strip() for s in it.split("=", 1))
            if name not in grid:
                items.append((name, None))
                continue
            vals = parse_values(name, txt)
            if len(vals) != 1:
                raise DepletionError(f"--where {it!r}: give one value")
            items.append((name, vals[0]))
    out: dict[str, Any] = {}
    for name, v in items:
        if name not in grid:
            allowed = ", ".join(grid) or "none (the results have no swept parameter)"
            raise DepletionError(f"--where: {name!r} is not a swept parameter of the results; allowed: {allowed}")
        match = [g for g in grid[name] if _same(g, v)]
        if not match:
            raise DepletionError(
                f"--where {name}: {_fmt_value(v)} is not in the grid; allowed: "
                + ", ".join(_fmt_value(g) for g in grid[name])
            )
        out[name] = match[0]
    return out


def _policies(result: SweepResult, policies: Sequence[str] | str | None) -> list[str]:
    allp = list(result.meta["policies"])
    if policies is None:
        return allp
    if isinstance(policies, str):
        policies = [policies]
    for p in policies:
        if p not in allp:
            raise DepletionError(f"--policy: {p!r} is not in the results; allowed: {', '.join(allp)}")
    return [p for p in allp if p in policies]


def _outcomes(result: SweepResult, outcome: str | Sequence[str], kinds: tuple[str, ...]) -> list[str]:
    outs = [outcome] if isinstance(outcome, str) else list(outcome)
    present = list(dict.fromkeys(r["outcome"] for r in result.rows if r["kind"] in kinds))
    if not outs:
        raise DepletionError(f"--outcome: give at least one; allowed: {', '.join(present)}")
    for o in outs:
        if o not in present:
            raise DepletionError(f"--outcome: {o!r} is not in the results; allowed: {', '.join(present)}")
    return outs


def _matches(row: dict, fixed: Mapping[str, Any]) -> bool:
    return all(_same(row[k], v) for k, v in fixed.items())


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _fraction(policy: str) -> float | None:
    if policy.startswith("fraction:"):
        try:
            return float(policy.split(":", 1)[1])
        except ValueError:
            return None
    return None


# ------------------------------------------------------------------ scales
def spans_decades(values: Sequence[float], decades: float = 2.0) -> bool:
    """Whether positive finite ``values`` span at least ``decades`` powers of ten."""
    pos = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    return len(pos) >= 2 and max(pos) / min(pos) >= 10**decades - 1e-9


def _geometric(values: Sequence[float]) -> bool:
    if len(values) < 3 or not all(v > 0 for v in values):
        return False
    v = sorted(float(x) for x in values)
    r = [b / a for a, b in zip(v, v[1:])]
    return min(r) >= 1.9 and max(r) / min(r) < 1.05


def log_x_wanted(values: Sequence[Any]) -> bool:
    """Log x when the swept values are positive numbers spanning >= 2 decades (or a log2/log10 grid)."""
    if not values or not _numeric(values) or not all(v > 0 for v in values):
        return False
    return spans_decades(values) or _geometric(values)


def _set_log_x(ax: Axes, values: Sequence[float]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    base = 10 if spans_decades(values) else 2
    ax.xaxis.set_major_locator(LogLocator(base=base, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _log_floor(values: Sequence[float]) -> float:
    pos = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return 10 ** math.floor(math.log10(min(pos) / 1.5)) if pos else 1e-6


# ------------------------------------------------------------------ drawing one series
@dataclass
class _Series:
    label: str
    style: dict
    x: list
    est: list[float]
    lo: list[float]
    hi: list[float]
    zero: list[bool]  # a proportion with count 0


def _series_rows(rows: Sequence[dict]) -> tuple[list[float], list[float], list[float], list[bool]]:
    est = [float(r["estimate"]) for r in rows]
    lo = [float(r["ci_low"]) if r["ci_low"] is not None else math.nan for r in rows]
    hi = [float(r["ci_high"]) if r["ci_high"] is not None else math.nan for r in rows]
    zero = [r["kind"] == "proportion" and r.get("count") == 0 for r in rows]
    return est, lo, hi, zero


def _log_y_wanted(series: Sequence[_Series], proportion: bool) -> bool:
    vals: list[float] = []
    for s in series:
        for e, h, z in zip(s.est, s.hi, s.zero):
            if z:
                vals.append(h)
            elif e <= 0 and not proportion:
                return False
            else:
                vals.append(e)
    return spans_decades(vals)


def _draw_series(
    ax: Axes, s: _Series, log_y: bool, floor: float, out: PlotArtists, key: str, band: bool, dodge: float = 0.0
) -> None:
    """One series: its line, its interval band (bars for categories) and carets at the upper ends of zero counts.

    On a log y axis a zero count has no band (its interval reaches 0, off the axis): the caret stands for it.
    ``dodge`` shifts the carets sideways by that many points, so that the bounds of several series that
    coincide stay visible (the data are unchanged).
    """
    import numpy as np
    from matplotlib.transforms import offset_copy

    x = np.asarray(s.x, dtype=float)
    est = np.asarray(s.est, dtype=float)
    lo = np.asarray(s.lo, dtype=float)
    hi = np.asarray(s.hi, dtype=float)
    zero = np.asarray(s.zero, dtype=bool)
    y = est.copy()
    if log_y:
        y[(y <= 0) | zero] = np.nan
        lo = np.where(lo > 0, lo, floor)
    st = dict(s.style)
    color = st.get("color")
    if band:
        (line,) = ax.plot(x, y, label=s.label, **st)
        where = ~zero if log_y else None
        out.bands[key] = ax.fill_between(x, lo, hi, where=where, color=color, alpha=BAND_ALPHA, linewidth=0)
    else:  # categorical x: points with interval bars
        st.pop("linestyle", None)
        cont = ax.errorbar(x, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], linestyle="none",
                           label=s.label, **st)  # fmt: skip
        out.errorbars[key] = cont
        line = cont.lines[0]
    out.lines[key] = line
    if zero.any():
        tr = offset_copy(ax.transData, fig=ax.figure, x=dodge, y=0.0, units="points") if dodge else ax.transData
        (b,) = ax.plot(x[zero], hi[zero], linestyle="none", marker=UPPER_BOUND_MARKER, markersize=6, color=color,
                       label="_nolegend_", transform=tr)  # fmt: skip
        out.bounds[key] = b


def _bound_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], linestyle="none", marker=UPPER_BOUND_MARKER, markersize=6, color="0.35",
                  label="none seen: upper bound")  # fmt: skip


def _wrap(text: str, ax: Axes, chars_per_inch: float = 17.0) -> str:
    """Break a title at ``", "`` / ``"; "`` so that it fits over the axes' figure column."""
    import textwrap

    fig_w = ax.figure.get_figwidth()
    ncols = ax.get_gridspec().ncols if ax.get_gridspec() is not None else 1
    width = max(30, int(fig_w / ncols * chars_per_inch))
    return "\n".join(textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False))


def _finish_legend(fig: Figure, axes: list[Axes], out: PlotArtists, ncols_max: int = 4, outside: bool = False) -> None:
    handles, labels = [], []
    seen = set()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen and not lab.startswith("_"):
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if out.bounds:
        h = _bound_handle()
        handles.append(h)
        labels.append(h.get_label())
    if not handles:
        return
    if len(axes) == 1 and not outside:
        out.legend = axes[0].legend(handles, labels, loc="best")
    else:
        ncols = min(len(handles), ncols_max if len(axes) > 1 else 2)
        out.legend = fig.legend(handles, labels, loc="outside lower center", ncols=ncols)


# ------------------------------------------------------------------ curve
def plot_curve(
    result: SweepResult,
    outcome: str | Sequence[str] = "exhausted",
    *,
    x: str | None = None,
    policies: Sequence[str] | None = None,
    where: Mapping[str, Any] | Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    width: str = "one",
    logx: bool | None = None,
    logy: bool | None = None,
) -> PlotArtists:
    """An outcome against a swept parameter: one line per policy with its interval band.

    Parameters
    ----------
    result : SweepResult
    outcome : str or sequence of str
        Outcome(s) to draw (``exhausted``, ``victim_failed``, a numeric
        outcome's mean, ...). Several outcomes give one panel each, except
        with ``x="policy"``, where they are the lines.
    x : str, optional
        The swept parameter on the x axis (default: the one with the most
        values), or ``"policy"``: the policies on the x axis, as numbers when
        they are ``fraction:X`` (other policies are then horizontal
        reference lines), otherwise as categories. Results without a swept
        parameter use ``"policy"``.
    policies : sequence of str, optional
        Policies to draw (default: all, in the file's order).
    where : mapping or sequence of ``"name=value"``, optional
        Fix swept parameters; the other parameters that are not ``x`` give
        one panel per value (at most 12 panels).
    ax : Axes or sequence of Axes, optional
        Where to draw (one per panel); default: a new figure.
    width : {"one", "two"}
        Width of a new figure: one column (3.5 in) or two (7.16 in).
    logx, logy : bool, optional
        Force the scales; by default x is logarithmic when the swept values
        are positive and span two decades (or form a log2/log10 grid), and y
        when the estimates (upper bounds for zero counts) span two decades.

    Returns
    -------
    PlotArtists
        ``lines``, ``bands`` (or ``errorbars`` for categories), ``bounds``
        (upper-bound markers of zero counts), ``references``, ``legend``.

    Raises
    ------
    DepletionError
        For an unknown outcome, policy, parameter or value.
    """
    with style():
        return _plot_curve(result, outcome, x, policies, where, ax, width, logx, logy)


def _plot_curve(result, outcome, x, policies, where, ax, width, logx, logy) -> PlotArtists:
    outs = _outcomes(result, outcome, ("proportion", "mean"))
    pols = _policies(result, policies)
    fixed = _where(result, where)
    free = [a for a in result.axes if a not in fixed]
    allowed_x = [*free, "policy"]
    if x is None:
        lengths = {a["name"]: len(a["values"]) for a in result.meta["grid"] if a["name"] in free}
        x = max(reversed(free), key=lambda a: lengths[a]) if free else "policy"
    if x == "fraction":
        x = "policy"
    if x not in allowed_x:
        raise DepletionError(f"--x: {x!r} is not a free swept parameter; allowed: {', '.join(allowed_x)}")
    others = [a for a in free if a != x]
    grid = {a["name"]: a["values"] for a in result.meta["grid"]}
    combos = list(itertools.product(*(grid[a] for a in others))) if others else [()]
    policy_x = x == "policy"
    panel_outcomes: list[str | None] = [None] if policy_x else list(outs)
    panels = [(o, dict(zip(others, c))) for o in panel_outcomes for c in combos]
    if len(panels) > MAX_PANELS:
        raise DepletionError(
            f"curve: {len(panels)} panels (one per value of {', '.join(others)}); fix some with --where name=value"
        )
    proportion = all(r["kind"] == "proportion" for r in result.rows
                     if r["outcome"] in outs and r["kind"] in ("proportion", "mean"))  # fmt: skip
    if ax is None:
        fig, axes = _new_figure(len(panels), width, sharey=len(panels) > 1)
    else:
        axes = _given_axes(ax, len(panels))
        fig = axes[0].figure
    out = PlotArtists(fig, axes, kind="curve")
    pol_index = {p: i for i, p in enumerate(result.meta["policies"])}
    # collect every panel's series first: one y scale for all panels
    drawn: list[tuple[Axes, str, list[_Series], list[_Series], dict, list]] = []
    xvals_all: list = []
    for pax, (o, pfixed) in zip(axes, panels):
        sel = {**fixed, **pfixed}
        title = ", ".join(_assign(k, v) for k, v in pfixed.items())
        if len(panel_outcomes) > 1:
            title = OUTCOME_SHORT.get(o, o) + (f", {title}" if title else "")
        series: list[_Series] = []
        refs: list[_Series] = []
        prows: list[dict] = []
        if policy_x:
            fracs = {p: _fraction(p) for p in pols}
            numeric = sum(f is not None for f in fracs.values()) >= 2
            on_x = [p for p in pols if fracs[p] is not None] if numeric else pols
            for j, oc in enumerate(outs):
                rows = {r["policy"]: r for r in result.rows
                        if r["outcome"] == oc and r["kind"] in ("proportion", "mean") and _matches(r, sel)}  # fmt: skip
                have = [p for p in on_x if p in rows]
                if numeric:
                    have.sort(key=lambda p: fracs[p])
                xs = [fracs[p] for p in have] if numeric else list(range(len(have)))
                sel_rows = [rows[p] for p in have]
                prows += sel_rows
                est, lo, hi, zero = _series_rows(sel_rows)
                label = OUTCOME_SHORT.get(oc, oc) if len(outs) > 1 else ("estimate" if numeric else oc)
                series.append(_Series(label, series_style(j), xs, est, lo, hi, zero))
                for p in pols:
                    if numeric and p not in on_x and p in rows:
                        e, lo1, hi1, z = _series_rows([rows[p]])
                        lab = f"{p}" if len(outs) == 1 else f"{p}: {OUTCOME_SHORT.get(oc, oc)}"
                        refs.append(_Series(lab, series_style(j), [], e, lo1, hi1, z))
                        prows.append(rows[p])
            xlabel = param_label("fraction") if numeric else "policy"
            xticks = None if numeric else have
            xvals_all += xs
        else:
            xs_grid = grid[x]
            for p in pols:
                rows = [r for r in result.rows if r["outcome"] == o and r["policy"] == p
                        and r["kind"] in ("proportion", "mean") and _matches(r, sel)]  # fmt: skip
                order = {json.dumps(v, sort_keys=True): i for i, v in enumerate(xs_grid)}
                rows.sort(key=lambda r: order.get(json.dumps(r[x], sort_keys=True), 0))
                if not rows:
                    continue
                prows += rows
                est, lo, hi, zero = _series_rows(rows)
                xv = [r[x] for r in rows]
                if not _numeric(xs_grid):
                    xv = [order[json.dumps(v, sort_keys=True)] for v in xv]
                series.append(_Series(p, series_style(pol_index[p]), xv, est, lo, hi, zero))
            numeric = _numeric(xs_grid)
            xlabel = param_label(x)
            xticks = None if numeric else [_fmt_value(v) for v in xs_grid]
            xvals_all += list(xs_grid) if numeric else []
        drawn.append((pax, title, series, refs, sel, prows))
    all_series = [s for d in drawn for s in (*d[2], *d[3])]
    log_y = _log_y_wanted(all_series, proportion) if logy is None else logy
    floor = _log_floor([v for s in all_series for v in (*s.est, *s.lo, *[h for h, z in zip(s.hi, s.zero) if z])])
    if log_y:
        floor = min(floor, _log_floor([v for s in all_series for v in s.est]))
    xvals_all = sorted(set(xvals_all)) if numeric else []
    log_x = (numeric and log_x_wanted(xvals_all)) if logx is None else logx
    for pax, title, series, refs, _sel, _prows in drawn:
        prefix = f"{title} / " if len(panels) > 1 else ""
        with_zero = [s for s in series if any(s.zero)]
        for s in series:
            k = with_zero.index(s) if s in with_zero else 0
            dodge = (k - (len(with_zero) - 1) / 2) * 2.5 if len(with_zero) > 1 else 0.0
            _draw_series(pax, s, log_y, floor, out, prefix + s.label, band=numeric, dodge=dodge)
        for s in refs:
            st = {**s.style, "linestyle": (0, (1, 1.5)), "linewidth": 0.9}
            st.pop("marker", None)
            line = pax.axhline(s.est[0], label=s.label, **st)
            lo = s.lo[0] if (s.lo[0] > 0 or not log_y) else floor
            band = pax.axhspan(lo, s.hi[0], color=st["color"], alpha=BAND_ALPHA * 0.6, linewidth=0)
            out.references[prefix + s.label] = line
            out.bands[prefix + s.label] = band
        if xticks is not None:
            pax.set_xticks(range(len(xticks)), xticks, rotation=30 if len(xticks) > 3 else 0, ha="right"
                           if len(xticks) > 3 else "center")  # fmt: skip
        elif log_x:
            _set_log_x(pax, xvals_all)
        pax.set_xlabel(xlabel)
        if len(panels) > 1 and title:
            pax.set_title(title)
    if log_y:  # once every panel is drawn: shared y limits must see all of the data
        for pax in axes:
            pax.set_yscale("log")
        for pax in axes:
            pax.set_ylim(bottom=floor)
    ylabel = outcome_label(outs[0]) if len(outs) == 1 else ("probability" if proportion else "mean")
    if len(outs) == 1 and not proportion:
        ylabel += " (mean)"
    for pax in axes:
        if pax is axes[0] or not (len(panels) > 1 and ax is None):
            pax.set_ylabel(ylabel)
    rows_all = [r for d in drawn for r in d[5]]
    note = scenario_note(result, fixed, rows_all)
    if len(panels) == 1:
        axes[0].set_title(_wrap(note, axes[0]), loc="left", fontsize="small")
    elif ax is None:
        fig.suptitle(note, fontsize="small")
    _finish_legend(fig, axes, out, outside=policy_x and len(out.lines) + len(out.references) + bool(out.bounds) > 3)
    return out


# ------------------------------------------------------------------ heatmap
def plot_heatmap(
    result: SweepResult,
    outcome: str | Sequence[str] = "exhausted",
    *,
    x: str | None = None,
    y: str | None = None,
    policies: Sequence[str] | None = None,
    where: Mapping[str, Any] | Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    width: str = "two",
    annotate: bool | None = None,
) -> PlotArtists:
    """An outcome over two swept parameters: one panel per policy and outcome, one shared colour scale.

    Parameters
    ----------
    result : SweepResult
    outcome : str or sequence of str
    x, y : str, optional
        The swept parameters of the columns and rows (default: the last two
        free parameters, the faster-varying one across).
    policies : sequence of str, optional
    where : mapping or sequence of ``"name=value"``, optional
        Fix the swept parameters beyond two.
    ax : Axes or sequence of Axes, optional
        One per panel (policies x outcomes).
    width : {"one", "two"}
    annotate : bool, optional
        Write each cell's estimate (zero counts as ``<upper bound``); default
        when the grid has at most 12 x 12 cells.

    Returns
    -------
    PlotArtists
        ``images`` (one ``QuadMesh`` per panel, its array the estimates with
        rows = ``y`` values), ``texts``, ``colorbar``.
    """
    with style():
        return _plot_heatmap(result, outcome, x, y, policies, where, ax, width, annotate)


def _plot_heatmap(result, outcome, x, y, policies, where, ax, width, annotate) -> PlotArtists:
    import numpy as np
    from matplotlib.colors import Normalize

    outs = _outcomes(result, outcome, ("proportion", "mean"))
    pols = _policies(result, policies)
    fixed = _where(result, where)
    axes_all = result.axes
    if len(axes_all) < 2:
        src = f" ({', '.join(axes_all)})" if axes_all else ""
        raise DepletionError(
            f"--kind heatmap: needs two swept parameters; the results have {len(axes_all)}{src}; use --kind curve"
        )
    free = [a for a in axes_all if a not in fixed]
    for name, opt in ((x, "--x"), (y, "--y")):
        if name is not None and name not in free:
            raise DepletionError(f"{opt}: {name!r} is not a free swept parameter; allowed: {', '.join(free)}")
    if x is None or y is None:
        rest = [a for a in free if a not in (x, y)]
        if x is None and y is None:
            y, x = (rest[-2], rest[-1]) if len(rest) >= 2 else (None, None)
        elif x is None:
            x = rest[-1] if rest else None
        else:
            y = rest[-1] if rest else None
    if x is None or y is None or x == y:
        raise DepletionError(f"--kind heatmap: needs two free swept parameters (free: {', '.join(free) or 'none'})")
    extra = [a for a in free if a not in (x, y)]
    if extra:
        raise DepletionError(
            f"--kind heatmap: fix the other swept parameters with --where name=value (free: {', '.join(extra)})"
        )
    grid = {a["name"]: a["values"] for a in result.meta["grid"]}
    xv, yv = grid[x], grid[y]
    key = {n: {json.dumps(v, sort_keys=True): i for i, v in enumerate(grid[n])} for n in (x, y)}
    panels = [(p, o) for o in outs for p in pols]
    if len(panels) > MAX_PANELS:
        raise DepletionError(f"heatmap: {len(panels)} panels; pick fewer with --policy / --outcome")
    data = {}
    zeros = {}
    his = {}
    prows = []
    for p, o in panels:
        c = np.full((len(yv), len(xv)), np.nan)
        z = np.zeros_like(c, dtype=bool)
        h = np.full_like(c, np.nan)
        for r in result.rows:
            if r["policy"] == p and r["outcome"] == o and r["kind"] in ("proportion", "mean") and _matches(r, fixed):
                i = key[y][json.dumps(r[y], sort_keys=True)]
                j = key[x][json.dumps(r[x], sort_keys=True)]
                c[i, j] = r["estimate"]
                z[i, j] = r["kind"] == "proportion" and r.get("count") == 0
                h[i, j] = r["ci_high"] if r["ci_high"] is not None else np.nan
                prows.append(r)
        data[(p, o)], zeros[(p, o)], his[(p, o)] = c, z, h
    finite = [v for c in data.values() for v in c.ravel() if np.isfinite(v)]
    proportion = all(r["kind"] == "proportion" for r in prows)
    vmax = max(finite) if finite else 1.0
    if proportion:
        vmax = max(vmax, 1e-9)
    norm = Normalize(vmin=0.0 if proportion or (finite and min(finite) >= 0) else min(finite), vmax=vmax)
    if ax is None:
        fig, axes = _new_figure(len(panels), width, aspect=0.9)
    else:
        axes = _given_axes(ax, len(panels))
        fig = axes[0].figure
    out = PlotArtists(fig, axes, kind="heatmap")
    if annotate is None:
        annotate = len(xv) <= 12 and len(yv) <= 12
    mesh = None
    for pax, (p, o) in zip(axes, panels):
        c = data[(p, o)]
        mesh = pax.pcolormesh(np.arange(len(xv) + 1) - 0.5, np.arange(len(yv) + 1) - 0.5, c, norm=norm,
                              shading="flat")  # fmt: skip
        title = p if len(outs) == 1 else f"{p}: {OUTCOME_SHORT.get(o, o)}"
        out.images[title] = mesh
        pax.set_title(title)
        pax.set_xticks(range(len(xv)), [_fmt_value(v) for v in xv])
        pax.set_yticks(range(len(yv)), [_fmt_value(v) for v in yv])
        pax.set_xlabel(param_label(x))
        pax.set_ylabel(param_label(y))
        pax.grid(False)
        if annotate:
            for i in range(len(yv)):
                for j in range(len(xv)):
                    v = c[i, j]
                    if not np.isfinite(v):
                        continue
                    txt = f"<{his[(p, o)][i, j]:.1g}" if zeros[(p, o)][i, j] else f"{v:.2g}"
                    colour = "white" if norm(v) < 0.55 else "black"
                    out.texts.append(pax.text(j, i, txt, ha="center", va="center", fontsize=5.5, color=colour))
    label = outcome_label(outs[0]) if len(outs) == 1 else ("probability" if proportion else "mean")
    if mesh is not None:
        out.colorbar = fig.colorbar(mesh, ax=axes, label=label, shrink=0.9)
    note = scenario_note(result, fixed, prows)
    if ax is None:
        fig.suptitle(note, fontsize="small")
    return out


# ------------------------------------------------------------------ paired difference
def _pair_rows(result: SweepResult, a: str, b: str, outcome: str, fixed: Mapping[str, Any]) -> list[dict]:
    out = []
    for r in result.rows:
        if r["outcome"] != outcome or r["kind"] not in ("paired_diff", "paired_mean_diff") or not _matches(r, fixed):
            continue
        if (r["policy"], r["vs"]) == (a, b):
            out.append(r)
        elif (r["policy"], r["vs"]) == (b, a):
            f = dict(r)
            f["estimate"] = -r["estimate"]
            f["ci_low"] = -r["ci_high"] if r["ci_high"] is not None else None
            f["ci_high"] = -r["ci_low"] if r["ci_low"] is not None else None
            f["policy"], f["vs"] = a, b
            out.append(f)
    return out


def plot_diff(
    result: SweepResult,
    a: str,
    b: str,
    outcome: str = "exhausted",
    *,
    x: str | None = None,
    where: Mapping[str, Any] | Sequence[str] | None = None,
    ax: Axes | None = None,
    width: str = "one",
    logx: bool | None = None,
) -> PlotArtists:
    """The paired difference ``a - b`` of an outcome (same episodes) with its interval, against a swept parameter.

    Proportions use Newcombe's paired interval, numbers the mean paired
    difference (as stored in the results file). Points whose interval
    excludes zero are filled, the others hollow. Other free swept
    parameters give one line per value.

    Parameters
    ----------
    result : SweepResult
    a, b : str
        Two policies of the results.
    outcome : str
    x : str, optional
        Swept parameter on the x axis (default: the one with the most values).
    where : mapping or sequence of ``"name=value"``, optional
    ax : Axes, optional
    width : {"one", "two"}
    logx : bool, optional

    Returns
    -------
    PlotArtists
        ``lines`` and ``bands`` keyed by the other parameters' values (or
        ``"a - b"``), ``references["zero"]``.
    """
    with style():
        return _plot_diff(result, a, b, outcome, x, where, ax, width, logx)


def _plot_diff(result, a, b, outcome, x, where, ax, width, logx) -> PlotArtists:
    pols = list(result.meta["policies"])
    for p, opt in ((a, "--a"), (b, "--b")):
        if p is None:
            raise DepletionError(f"{opt}: give a policy of the results; allowed: {', '.join(pols)}")
        if p not in pols:
            raise DepletionError(f"{opt}: policy {p!r} is not in the results; allowed: {', '.join(pols)}")
    if a == b:
        raise DepletionError("--a and --b must be two different policies")
    outs = _outcomes(result, outcome, ("paired_diff", "paired_mean_diff"))
    o = outs[0]
    fixed = _where(result, where)
    free = [n for n in result.axes if n not in fixed]
    if not free:
        raise DepletionError(
            "--kind diff: the results have no free swept parameter to draw against; use `depletion compare`"
        )
    grid = {g["name"]: g["values"] for g in result.meta["grid"]}
    if x is None:
        x = max(reversed(free), key=lambda n: len(grid[n]))
    if x not in free:
        raise DepletionError(f"--x: {x!r} is not a free swept parameter of the results; allowed: {', '.join(free)}")
    others = [n for n in free if n != x]
    combos = list(itertools.product(*(grid[n] for n in others))) if others else [()]
    if ax is None:
        fig, axes = _new_figure(1, width)
        ax = axes[0]
    fig = ax.figure
    out = PlotArtists(fig, [ax], kind="diff")
    order = {json.dumps(v, sort_keys=True): i for i, v in enumerate(grid[x])}
    numeric = _numeric(grid[x])
    prows_all = []
    for k, c in enumerate(combos):
        sel = {**fixed, **dict(zip(others, c))}
        rows = sorted(_pair_rows(result, a, b, o, sel), key=lambda r: order[json.dumps(r[x], sort_keys=True)])
        if not rows:
            continue
        prows_all += rows
        label = ", ".join(_assign(n, v) for n, v in zip(others, c)) or f"{a} - {b}"
        st = series_style(k)
        xs = [r[x] if numeric else order[json.dumps(r[x], sort_keys=True)] for r in rows]
        est, lo, hi, _ = _series_rows(rows)
        (line,) = ax.plot(xs, est, label=label, **st)
        out.lines[label] = line
        out.bands[label] = ax.fill_between(xs, lo, hi, color=st["color"], alpha=BAND_ALPHA, linewidth=0)
        hollow = [i for i in range(len(xs)) if lo[i] <= 0 <= hi[i]]
        if hollow:  # intervals that include zero: hollow markers
            ax.plot([xs[i] for i in hollow], [est[i] for i in hollow], linestyle="none", marker=st["marker"],
                    markerfacecolor="white", markeredgecolor=st["color"], label="_nolegend_")  # fmt: skip
    if not prows_all:
        raise DepletionError(f"--kind diff: the results hold no paired differences of {a} and {b} for {o}")
    out.references["zero"] = ax.axhline(0.0, color="0.2", linewidth=0.6, zorder=1)
    if numeric and (log_x_wanted(grid[x]) if logx is None else logx):
        _set_log_x(ax, grid[x])
    if not numeric:
        ax.set_xticks(range(len(grid[x])), [_fmt_value(v) for v in grid[x]])
    ax.set_xlabel(param_label(x))
    what = outcome_label(o)
    ax.set_ylabel(f"{what}: {a} − {b}" if len(what) < 26 else f"difference, {a} − {b}")
    what2 = f"{OUTCOME_SHORT.get(o, o)}: paired difference {a} − {b} (hollow: interval includes 0)"
    ax.set_title(_wrap(scenario_note(result, fixed, prows_all), ax) + "\n" + _wrap(what2, ax), loc="left",
                 fontsize="small")  # fmt: skip
    if len(out.lines) > 1:
        out.legend = ax.legend(loc="best")
    return out


# ------------------------------------------------------------------ distributions
def plot_cdf(
    result: SweepResult,
    outcome: str | Sequence[str] = CDF_OUTCOMES,
    *,
    policies: Sequence[str] | None = None,
    where: Mapping[str, Any] | Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    width: str = "two",
    logx: bool | None = None,
) -> PlotArtists:
    """The distribution of numeric outcomes per policy at one point, from the file's quantiles.

    Results files keep the median, 90th and 99th percentiles with their
    order-statistic intervals, so the CDF is drawn through those three step
    points, with each quantile's interval as a horizontal bar (a
    right-pointing caret where the episodes cannot bound it above). For the
    full empirical CDF use :func:`plot_cdf_episodes` on a simulation with
    ``keep_episodes=True``.

    Parameters
    ----------
    result : SweepResult
    outcome : str or sequence of str
        Numeric outcomes, one panel each (default ``min_free_frac`` and
        ``resolve_us``).
    policies : sequence of str, optional
    where : mapping or sequence of ``"name=value"``, optional
        The point; swept parameters left free take their last value (named
        in the title).
    ax : Axes or sequence of Axes, optional
        One per outcome.
    width : {"one", "two"}
    logx : bool, optional
        Default: log when the quantiles are positive and span two decades.

    Returns
    -------
    PlotArtists
        ``lines`` (step lines through the quantiles), ``errorbars``,
        ``bounds`` (open-ended intervals).
    """
    with style():
        return _plot_cdf(result, outcome, policies, where, ax, width, logx)


def _plot_cdf(result, outcome, policies, where, ax, width, logx) -> PlotArtists:
    import numpy as np

    outs = _outcomes(result, outcome, ("mean",))
    pols = _policies(result, policies)
    fixed = _where(result, where)
    for g in result.meta["grid"]:
        if g["name"] not in fixed:
            fixed[g["name"]] = g["values"][-1]
    if ax is None:
        fig, axes = _new_figure(len(outs), width)
    else:
        axes = _given_axes(ax, len(outs))
        fig = axes[0].figure
    out = PlotArtists(fig, axes, kind="cdf")
    pol_index = {p: i for i, p in enumerate(result.meta["policies"])}
    levels = [lv for lv, _ in QUANTILE_LEVELS]
    prows = []
    for pax, o in zip(axes, outs):
        allx = []
        for p in pols:
            rows = [r for r in result.rows if r["outcome"] == o and r["policy"] == p and r["kind"] == "mean"
                    and _matches(r, fixed)]  # fmt: skip
            if not rows:
                continue
            r = rows[0]
            prows.append(r)
            qs = np.array([r[t] for _, t in QUANTILE_LEVELS], dtype=float)
            lo = np.array([r.get(f"{t}_low") if r.get(f"{t}_low") is not None else np.nan for _, t in QUANTILE_LEVELS])
            hi = np.array([r.get(f"{t}_high") if r.get(f"{t}_high") is not None else np.nan
                           for _, t in QUANTILE_LEVELS])  # fmt: skip
            lo = np.where(np.isfinite(lo), lo, qs)
            open_hi = ~np.isfinite(hi)
            hi = np.where(open_hi, qs, hi)
            allx += [*qs, *lo, *hi]
            st = series_style(pol_index[p])
            key = p if len(outs) == 1 else f"{OUTCOME_SHORT.get(o, o)} / {p}"
            (line,) = pax.step(qs, levels, where="post", label=p, **st)
            out.lines[key] = line
            out.errorbars[key] = pax.errorbar(qs, levels, xerr=[qs - lo, hi - qs], fmt="none", ecolor=st["color"],
                                              elinewidth=0.8, capsize=2)  # fmt: skip
            if open_hi.any():
                (b,) = pax.plot(qs[open_hi], np.array(levels)[open_hi], linestyle="none", marker=OPEN_RIGHT_MARKER,
                                markersize=6, color=st["color"], label="_nolegend_")  # fmt: skip
                out.bounds[key] = b
        pax.set_yscale("logit")
        pax.set_ylim(0.3, 0.995)
        pax.set_yticks(levels, [f"{lv:g}" for lv in levels])
        pax.yaxis.set_minor_formatter(_null_formatter())
        if (spans_decades(allx) and all(v > 0 for v in allx)) if logx is None else logx:
            pax.set_xscale("log")
        pax.set_xlabel(outcome_label(o))
        pax.set_ylabel("cumulative probability")
        if len(outs) > 1:
            pax.set_title(OUTCOME_SHORT.get(o, o))
    if not prows:
        raise DepletionError(f"--kind cdf: no quantiles of {', '.join(outs)} at this point")
    note = scenario_note(result, {k: v for k, v in fixed.items()}, prows) + "; quantiles 50/90/99% with intervals"
    if len(outs) == 1:
        axes[0].set_title(_wrap(note, axes[0]), loc="left", fontsize="small")
    elif ax is None:
        fig.suptitle(note, fontsize="small")
    if any(out.bounds.values()):
        out.bounds = {k: v for k, v in out.bounds.items() if v is not None}
    _finish_legend_cdf(fig, axes, out)
    return out


def _null_formatter() -> Any:
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _finish_legend_cdf(fig: Figure, axes: list[Axes], out: PlotArtists) -> None:
    from matplotlib.lines import Line2D

    handles, labels = [], []
    for h, lab in zip(*axes[0].get_legend_handles_labels()):
        if not lab.startswith("_") and lab not in labels:
            handles.append(h)
            labels.append(lab)
    if out.bounds:
        handles.append(Line2D([], [], linestyle="none", marker=OPEN_RIGHT_MARKER, markersize=6, color="0.35"))
        labels.append("no upper bound")
    if len(axes) == 1:
        out.legend = axes[0].legend(handles, labels, loc="lower right")
    else:
        out.legend = fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 4))


def episode_values(result: Result, policy: str, outcome: str) -> Any:
    """Per-episode values of a numeric outcome from ``result.episode_data`` (``min_free_frac`` = min_free / W).

    Raises
    ------
    DepletionError
        If the result has no per-episode data or no such policy/outcome.
    """
    import numpy as np

    if not result.episode_data:
        raise DepletionError("plot_cdf_episodes: needs per-episode data: simulate(..., keep_episodes=True)")
    if policy not in result.episode_data:
        raise DepletionError(f"policy: {policy!r} was not simulated; allowed: {', '.join(result.episode_data)}")
    d = result.episode_data[policy]
    if outcome == "min_free_frac":
        return np.asarray(d["min_free"], dtype=float) / np.maximum(np.asarray(d["W"], dtype=float), 1.0)
    if outcome not in d:
        allowed = ", ".join(["min_free_frac", *d])
        raise DepletionError(f"outcome: {outcome!r} is not a per-episode column; allowed: {allowed}")
    return np.asarray(d[outcome], dtype=float)


def plot_cdf_episodes(
    result: Result,
    outcome: str = "min_free_frac",
    ax: Axes | None = None,
    *,
    policies: Sequence[str] | None = None,
    band: bool = True,
    logx: bool | None = None,
    width: str = "one",
) -> PlotArtists:
    """The empirical CDF of a numeric outcome per policy, from per-episode data.

    Parameters
    ----------
    result : depletion.Result
        From ``depletion.simulate(..., keep_episodes=True)``.
    outcome : str
        ``min_free_frac`` (min_free / W), or any per-episode column of
        :data:`depletion.engine.OUTCOLS` (``resolve_us``, ``min_free``,
        ``max_stall_us``, ...).
    ax : Axes, optional
    policies : sequence of str, optional
    band : bool
        Shade the Dvoretzky-Kiefer-Wolfowitz band of the CDF at the
        result's confidence level (uniform over the whole curve).
    logx : bool, optional
        Default: log when the values are positive and span two decades.
    width : {"one", "two"}

    Returns
    -------
    PlotArtists
        ``lines`` (the ECDF steps) and ``bands`` keyed by policy.
    """
    with style():
        import numpy as np

        if not result.episode_data:
            raise DepletionError("plot_cdf_episodes: needs per-episode data: simulate(..., keep_episodes=True)")
        pols = list(result.episode_data) if policies is None else list(policies)
        vals = {p: episode_values(result, p, outcome) for p in pols}
        if ax is None:
            fig, axes = _new_figure(1, width)
            ax = axes[0]
        out = PlotArtists(ax.figure, [ax], kind="cdf_episodes")
        order = list(result.policies) or pols
        allv = np.concatenate([v for v in vals.values()]) if vals else np.array([])
        for p in pols:
            v = np.sort(vals[p])
            n = len(v)
            st = series_style(order.index(p) if p in order else len(order))
            st.pop("marker", None)
            line = ax.ecdf(v, label=p, color=st["color"], linestyle=st["linestyle"], marker="")
            out.lines[p] = line
            if band and n:
                eps = math.sqrt(math.log(2.0 / (1.0 - result.confidence)) / (2.0 * n))
                f = np.arange(1, n + 1) / n
                out.bands[p] = ax.fill_between(v, np.clip(f - eps, 0, 1), np.clip(f + eps, 0, 1), step="post",
                                               color=st["color"], alpha=BAND_ALPHA, linewidth=0)  # fmt: skip
        positive = allv.size and bool(np.all(allv > 0))
        if (positive and spans_decades([float(allv.min()), float(allv.max())])) if logx is None else logx:
            ax.set_xscale("log")
        ax.set_xlabel(outcome_label(outcome))
        ax.set_ylabel("cumulative probability")
        ax.set_ylim(-0.02, 1.02)
        sc = result.scenario
        parts = [f"{_fmt_value(sc['memory_gib'])} GiB", f"{_fmt_value(sc['threads'])} threads"]
        if sc["victims"] != 1:
            parts.append(f"{sc['victims']} victims")
        parts += [f"{result.episodes:,} episodes", f"seed {result.seed}"]
        conf = f"{result.confidence * 100:g}%"
        title = f"{sc.name}: " + ", ".join(parts) + (f"; {conf} DKW bands" if band else "")
        ax.set_title(_wrap(title, ax), loc="left", fontsize="small")
        out.legend = ax.legend(loc="best")
        return out


# ------------------------------------------------------------------ dispatch and files
# ------------------------------------------------------------------ episode timelines
#: floors drawn under F(t): trace key, label, line style
TIMELINE_FLOORS = (
    ("min", "min watermark", "--"),
    ("oom_victim", "OOM-victim floor", "-."),
    ("atomic", "atomic floor", ":"),
)
#: victim and reaper events drawn on the timeline: trace kind, legend label, marker
TIMELINE_EVENTS = (
    ("victim_fail", "victim request failed", "x"),
    ("oom_pass", "OOM-killer pass", "^"),
    ("thread_exit", "victim thread exit", "|"),
)
TIMELINE_LINES = (("reaper_start", "reaper starts"), ("reaper_give_up", "reaper gives up"))


def plot_timeline(
    traces: Any,
    ax: Axes | Sequence[Axes] | None = None,
    *,
    width: str = "two",
    time_unit: str = "ms",
    ylim: float | None = None,
) -> PlotArtists:
    """Free pages over time in chosen episodes, against the ``min``, OOM-victim and atomic floors.

    One panel per trace (:func:`depletion.trace.trace_episodes`): ``F(t)``
    as a step line, the policy's floors as horizontal lines (the exhaustion
    floor too when it is above 0), failed victim requests, OOM-killer passes
    and victim thread exits as markers on ``F(t)``, and the reaper's start
    and give-up as vertical lines.

    Parameters
    ----------
    traces : Trace or sequence of Trace
    ax : Axes or sequence of Axes, optional
        One per trace.
    width : {"one", "two"}
    time_unit : {"ms", "us", "s"}
    ylim : float, optional
        Top of the y axis in pages (default: ``max(2 W, 1.2 F(0))``, so the
        reserves fill the panel; the teardown's frees then leave the top).

    Returns
    -------
    PlotArtists
        ``lines`` (``"<panel> / F"`` and ``"<panel> / <event kind>"``) and
        ``references`` (``"<panel> / <floor>"`` and the reaper lines).
    """
    import numpy as np

    scale = {"us": 1.0, "ms": 1e-3, "s": 1e-6}
    if time_unit not in scale:
        raise DepletionError(f"time_unit: unknown {time_unit!r}; allowed: {', '.join(scale)}")
    trs = [traces] if hasattr(traces, "free_pages") else list(traces)
    if not trs:
        raise DepletionError("plot_timeline: no traces to draw")
    with style():
        if ax is None:
            import matplotlib.pyplot as plt

            if width not in WIDTHS:
                raise DepletionError(f"--width: unknown {width!r}; allowed: {', '.join(WIDTHS)}")
            w = WIDTHS[width]
            fig, axs = plt.subplots(len(trs), 1, figsize=(w, (0.42 * w) * len(trs) + 0.5), squeeze=False)
            axes = list(axs.ravel())
        else:
            axes = _given_axes(ax, len(trs))
            fig = axes[0].figure
        out = PlotArtists(fig, axes, kind="timeline")
        k = scale[time_unit]
        for i, (a, tr) in enumerate(zip(axes, trs)):
            title = f"{tr.policy}, episode {tr.episode}"
            pre = f"{title} / " if len(trs) > 1 else ""
            t = np.asarray(tr.t_us, dtype=float) * k
            f = np.asarray(tr.free_pages)
            st = series_style(0)
            (line,) = a.step(t, f, where="post", color=st["color"], linewidth=1.0, marker="", label="free pages F(t)")
            out.lines[pre + "F"] = line
            floors = dict(tr.floors)
            for key, label, ls in TIMELINE_FLOORS:
                if key in floors and (key != "oom_victim" or floors[key] != floors.get("min")):
                    out.references[pre + key] = a.axhline(floors[key], color="0.35", linestyle=ls, linewidth=0.8,
                                                          label=f"{label} ({floors[key]})")  # fmt: skip
            if floors.get("exhaustion_floor", 0) > 0:
                out.references[pre + "exhaustion_floor"] = a.axhline(
                    floors["exhaustion_floor"], color="0.1", linewidth=0.8, label="exhaustion floor"
                )
            for j, (kind_name, label, marker) in enumerate(TIMELINE_EVENTS):
                m = tr.mask(kind_name)
                if np.any(m):
                    ev = series_style(j + 1)
                    (pts,) = a.plot(t[m], f[m], linestyle="none", marker=marker, markersize=3, alpha=0.7,
                                    color=ev["color"], label=label)  # fmt: skip
                    out.lines[pre + kind_name] = pts
            for j, (kind_name, label) in enumerate(TIMELINE_LINES):
                m = tr.mask(kind_name)
                for n_, tv in enumerate(t[m]):
                    out.references[f"{pre}{kind_name} {n_}"] = a.axvline(
                        tv, color="0.5", linestyle=("--", ":")[j], linewidth=0.7, label=label if n_ == 0 else None
                    )
            a.set_title(title + (" (trace truncated)" if tr.truncated_trace else ""))
            a.set_ylabel("free pages")
            f0 = float(f[0]) if len(f) else float(tr.W)
            a.set_ylim(0, ylim if ylim is not None else max(2.0 * tr.W, 1.2 * f0))
            if i == len(trs) - 1:
                a.set_xlabel(f"time since the kill ({time_unit})")
            leg = a.legend(fontsize="x-small", loc="upper left", ncols=2)
            if i == 0:
                out.legend = leg
        if ax is None and fig.get_layout_engine() is None:
            fig.tight_layout()
    return out


def timeline_from_results(
    result: SweepResult,
    episodes: Sequence[int],
    policies: Sequence[str] | None = None,
    where: Mapping[str, Any] | Sequence[str] | None = None,
) -> list[Any]:
    """Trace episodes of a results file's scenario, seed and point (the episodes its estimates counted).

    Every swept parameter must be fixed by ``where`` unless the grid has one
    point. Returns one trace per (policy, episode).
    """
    from depletion.config import Scenario, resolve
    from depletion.trace import trace_episodes

    meta = result.meta
    fixed = _where(result, where)
    missing = [a["name"] for a in meta["grid"] if a["name"] not in fixed and len(a["values"]) > 1]
    if missing:
        raise DepletionError(f"--kind timeline: fix every swept parameter with --where; missing: {', '.join(missing)}")
    over = {a["name"]: fixed.get(a["name"], a["values"][0]) for a in meta["grid"]}
    sc = Scenario(resolve(meta["scenario"]), meta.get("scenario_name") or "results").with_overrides(over)
    pols = _policies(result, policies)
    if not episodes:
        raise DepletionError("--kind timeline: give the episodes to trace with --episode N (repeatable)")
    return [tr for p in pols for tr in trace_episodes(sc, p, list(episodes), seed=int(meta["seed"]))]


def choose_kind(result: SweepResult) -> str:
    """The figure that suits a results file: heatmap for two comparable swept parameters, else curve."""
    lens = sorted(len(a["values"]) for a in result.meta["grid"])
    if len(lens) == 2 and lens[0] > 4:
        return "heatmap"
    return "curve"


def plot(result: SweepResult, kind: str | None = None, **kw: Any) -> PlotArtists:
    """Draw a results file: ``kind`` one of :data:`KINDS` (default: :func:`choose_kind`).

    Keyword arguments go to :func:`plot_curve`, :func:`plot_heatmap`,
    :func:`plot_diff` (needs ``a`` and ``b``; default with two policies:
    the second minus the first) or :func:`plot_cdf`.
    """
    kind = choose_kind(result) if kind is None else kind
    if kind not in KINDS:
        raise DepletionError(f"--kind: unknown {kind!r}; allowed: {', '.join(KINDS)}")
    kw = {k: v for k, v in kw.items() if v is not None}
    if kind == "curve":
        return plot_curve(result, **kw)
    if kind == "heatmap":
        return plot_heatmap(result, **kw)
    if kind == "cdf":
        kw.pop("x", None)
        return plot_cdf(result, **kw)
    if kind == "timeline":
        traces = timeline_from_results(result, kw.pop("episodes", ()), kw.pop("policies", None), kw.pop("where", None))
        return plot_timeline(traces, width=kw.get("width", "two"))
    pols = list(result.meta["policies"])
    a, b = kw.pop("a", None), kw.pop("b", None)
    if a is None and b is None and len(pols) == 2:
        a, b = pols[1], pols[0]
    kw.pop("policies", None)
    if isinstance(kw.get("outcome"), (list, tuple)):
        outs = kw["outcome"]
        if len(outs) != 1:
            raise DepletionError("--kind diff: give one --outcome")
        kw["outcome"] = outs[0]
    return plot_diff(result, a, b, **kw)


def _parse_formats(formats: str | Sequence[str] | None, out: Path) -> list[str]:
    if formats is None:
        suffix = out.suffix.lower().lstrip(".")
        if suffix in FORMATS:
            return [suffix]
        if suffix:
            raise DepletionError(f"--out {out}: unknown figure format {suffix!r}; allowed: {', '.join(FORMATS)}")
        return ["pdf", "png"]
    fmts = [f.strip().lower().lstrip(".") for f in (formats.split(",") if isinstance(formats, str) else formats)]
    for f in fmts:
        if f not in FORMATS:
            raise DepletionError(f"--format: unknown {f!r}; allowed: {', '.join(FORMATS)} (comma-separated)")
    if not fmts:
        raise DepletionError(f"--format: give at least one of {', '.join(FORMATS)}")
    return list(dict.fromkeys(fmts))


def figure_metadata(command: str, results: str | Path | None, result: SweepResult | None = None,
                    title: str | None = None) -> dict[str, str]:  # fmt: skip
    """Provenance for :func:`save_figure`: the command that made the figure and the results file it drew."""
    from depletion import __version__

    md = {"command": command, "results": str(results) if results is not None else "", "software": f"depletion "
          f"{__version__}"}  # fmt: skip
    if title:
        md["title"] = title
    if result is not None and result.meta.get("command"):
        md["sweep"] = " ".join(result.meta["command"])
    return md


def _file_metadata(fmt: str, md: Mapping[str, str]) -> dict[str, Any]:
    cmd, res, sw = md.get("command", ""), md.get("results", ""), md.get("sweep", "")
    software = md.get("software", "depletion")
    if fmt == "pdf":
        kw = f"results={res}" + (f"; sweep={sw}" if sw else "")
        out: dict[str, Any] = {"Creator": f"{software}: {cmd}", "Subject": cmd, "Keywords": kw, "CreationDate": None}
        if md.get("title"):
            out["Title"] = md["title"]
        return out
    if fmt == "png":
        out = {"Software": software, "Description": cmd, "Source": res}
        if sw:
            out["Comment"] = f"results made by: {sw}"
        if md.get("title"):
            out["Title"] = md["title"]
        return out
    return {"Creator": f"{software}: {cmd}", "Description": f"results={res}", "Date": None}


def save_figure(
    fig: Figure | PlotArtists,
    out: str | Path,
    formats: str | Sequence[str] | None = None,
    *,
    dpi: int = 300,
    metadata: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a figure as PDF (Type 42 fonts), PNG (``dpi``) and/or SVG, with provenance metadata.

    Parameters
    ----------
    fig : Figure or PlotArtists
    out : str or Path
        File name; its suffix is replaced by each format's.
    formats : str or sequence of str, optional
        ``"pdf,png"`` or ``["pdf", "png"]``; default: the suffix of ``out``
        (both PDF and PNG when it has none).
    dpi : int
        Resolution of raster formats.
    metadata : mapping, optional
        From :func:`figure_metadata`: ``command``, ``results``, ``sweep``,
        ``title``, ``software``; written to the PDF's ``Creator``,
        ``Subject`` and ``Keywords``, the PNG's text chunks (``Description``,
        ``Source``, ``Comment``, ``Software``) and the SVG's metadata. No
        dates are written, so the same figure gives the same bytes.

    Returns
    -------
    list of Path
        The files written.
    """
    fig = fig.figure if isinstance(fig, PlotArtists) else fig
    path = Path(out)
    fmts = _parse_formats(formats, path)
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 10 <= dpi <= 2400:
        raise DepletionError(f"--dpi: {dpi!r} must be a whole number in [10, 2400]")
    written = []
    base = path.with_suffix("") if path.suffix.lower().lstrip(".") in FORMATS else path
    with style():
        for f in fmts:
            target = base.with_name(base.name + "." + f)
            target.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(target, format=f, dpi=dpi, metadata=_file_metadata(f, metadata or {}))
            written.append(target)
    return written
