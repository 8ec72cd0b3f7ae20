"""Jupyter helpers: progress bars for long runs and HTML tables of results.

>>> from depletion.display import notebook_progress, enable_html
>>> enable_html()                    # Result / SweepResult show as HTML tables
>>> res = depletion.simulate(sc, episodes=100_000, progress=notebook_progress("simulate"))
>>> sw = depletion.sweep(sc, ["threads=1..1024:log2"], progress=notebook_progress("sweep"))

Nothing here imports matplotlib, numba or IPython at import time.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ProgressCallback", "enable_html", "notebook_progress", "result_html", "sweep_html"]


def _tqdm_class() -> Any:
    """tqdm's notebook bar when ipywidgets is there, its text bar otherwise, None without tqdm."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return None
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None and "IPKernelApp" in ip.config:
            from tqdm.notebook import tqdm as bar

            return bar
    except Exception:  # no IPython / widgets: the text bar
        pass
    from tqdm.std import tqdm as bar

    return bar


class ProgressCallback:
    """A progress callback for :func:`depletion.simulate` and :func:`depletion.sweep`.

    Called as ``cb(done, total)`` (episodes, by ``simulate``) or ``cb(state)``
    with the dict of :func:`depletion.sweeps.run_sweep` (points, episodes,
    elapsed time). Shows a tqdm bar (a widget in Jupyter when ipywidgets is
    installed), or one text line rewritten in place without tqdm. The bar
    closes itself when the run completes; a later run starts a new one.

    Parameters
    ----------
    desc : str
        Label in front of the bar.
    use_tqdm : bool
        False forces the plain text line.
    stream : file-like, optional
        Where the text line goes (default ``sys.stderr``).
    """

    def __init__(self, desc: str = "", *, use_tqdm: bool = True, stream: Any = None) -> None:
        self.desc = desc
        self._cls = _tqdm_class() if use_tqdm else None
        self._stream = stream
        self._bar: Any = None
        self._text_on = False
        self._last = -1.0
        self._t0 = 0.0
        self._shown = 0.0
        self._created = time.monotonic()  # made just before the run starts: the bar's start time
        self._runs = 0

    def __call__(self, done: Any, total: int | None = None) -> None:
        if isinstance(done, dict):  # a sweep's state
            s = done
            total_f = float(s["points_total"])
            n = min(float(s["points_done"]) + float(s.get("point_fraction", 0.0)), total_f)
            rate = s["episodes"] / s["elapsed_s"] if s.get("elapsed_s") else 0.0
            unit, post = "points", f"{rate:,.0f} episodes/s"
            finished = s["points_done"] >= s["points_total"]
        else:
            total_f = int(total if total else done)
            n = int(done)
            unit, post = "episodes", ""
            finished = n >= total_f
        if n < self._last:  # a new run with the same callback
            self.close()
        self._last = n
        if self._cls is not None:
            if self._bar is None:
                fmt = None
                if unit == "points":
                    fmt = "{l_bar}{bar}| {n:.1f}/{total:.0f} points [{elapsed}<{remaining}{postfix}]"
                self._bar = self._cls(total=total_f, desc=self.desc or None, unit=f" {unit}", leave=True,
                                      bar_format=fmt)  # fmt: skip
                if self._runs == 0:  # the first run: time it from the callback's creation
                    ago = time.monotonic() - self._created
                    self._bar.start_t = self._bar.last_print_t = self._bar._time() - ago
                self._runs += 1
            self._bar.n = n
            if post:
                self._bar.set_postfix_str(post, refresh=False)
            self._bar.refresh()
        else:
            self._text(n, total_f, unit, post, finished)
        if finished:
            self.close()

    def _text(self, n: float, total: float, unit: str, post: str, finished: bool) -> None:
        now = time.monotonic()
        if not self._text_on:
            self._text_on, self._t0 = True, now
        if not finished and now - self._shown < 0.5:
            return
        self._shown = now
        pct = 100.0 * n / total if total else 100.0
        el = now - self._t0
        left = f", {el * (total - n) / n:.0f} s left" if 0 < n < total else ""
        label = f"{self.desc}: " if self.desc else ""
        num = f"{n:,.0f}" if unit == "episodes" else f"{n:.1f}"
        line = f"\r{label}{num}/{total:,.0f} {unit} ({pct:.0f}%), {el:.0f} s{left}" + (f", {post}" if post else "")
        out = self._stream if self._stream is not None else sys.stderr
        out.write(line + ("\n" if finished else ""))
        out.flush()

    def close(self) -> None:
        """Close the bar (done automatically when the run completes)."""
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._text_on = False
        self._last = -1.0


def notebook_progress(desc: str = "", *, use_tqdm: bool = True) -> Callable[..., None]:
    """A progress callback for ``simulate(..., progress=cb)`` and ``sweep(..., progress=cb)``.

    Uses ``tqdm`` (its Jupyter widget when ipywidgets is installed), else a
    plain text line. See :class:`ProgressCallback`.
    """
    return ProgressCallback(desc, use_tqdm=use_tqdm)


# ------------------------------------------------------------------ HTML tables
_CSS = (
    "<style>.depletion-table td,.depletion-table th{text-align:right;padding:2px 8px;font-variant-numeric:"
    "tabular-nums}.depletion-table th:first-child,.depletion-table td:first-child{text-align:left}"
    ".depletion-table .ci{color:#666;font-size:85%}</style>"
)


def _p(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0:
        return "0"
    return f"{x:.4f}" if x >= 0.001 else f"{x:.2e}"


def _n(x: float | None) -> str:
    if x is None or x != x:
        return ""
    if abs(x) >= 1e5 or (0 < abs(x) < 1e-2):
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.0f}"


def _cell(e: dict) -> str:
    """One estimate: the value, its interval in grey, the count for proportions."""
    if "p" in e or e.get("kind") == "proportion":
        p = e.get("p", e.get("estimate"))
        ci = f"[{_p(e['ci_low'])}, {_p(e['ci_high'])}]"
        return f"{_p(p)} <span class='ci'>{ci} ({e['count']}/{e['n']})</span>"
    m = e.get("mean", e.get("estimate"))
    lo, hi = e.get("ci_low"), e.get("ci_high")
    ci = f"[{_n(lo)}, {_n(hi)}]" if lo is not None and hi is not None else ""
    q = e.get("quantiles")
    extra = f" p50 {_n(q.get('0.5'))}, p99 {_n(q.get('0.99'))}" if isinstance(q, dict) else ""
    return f"{_n(m)} <span class='ci'>{ci}{extra}</span>"


def _table(head: list[str], rows: list[list[str]], caption: str) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f"{_CSS}<table class='depletion-table'><caption style='text-align:left'>{html.escape(caption)}"
            f"</caption><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")  # fmt: skip


def result_html(result: Any) -> str:
    """An HTML table of a :class:`depletion.Result`: a row per outcome, a column per policy, with intervals."""
    pols = list(result.policies)
    first = next(iter(result.policies.values()))
    rows = [[html.escape(o), *(_cell(result.policies[p][o]) for p in pols)] for o in first]
    conf = f"{result.confidence * 100:g}%"
    cap = (
        f"scenario {result.scenario.name}: {result.episodes:,} episodes, seed {result.seed}, {conf} "
        f"{result.ci_method} intervals (proportions: [interval] (count/n); numbers: mean [interval], quantiles)"
    )
    out = _table(["outcome", *pols], rows, cap)
    if result.pairs:
        prow = []
        for pr in result.pairs:
            for o, e in pr["outcomes"].items():
                if "n10" not in e:
                    continue
                d = f"{e['diff']:+.4f} <span class='ci'>[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}] " \
                    f"({e['n10']}/{e['n01']}, McNemar p={e['mcnemar_p']:.3g})</span>"  # fmt: skip
                prow.append([html.escape(f"{pr['a']} - {pr['b']}"), html.escape(o), d])
        out += _table(["pair", "outcome", "paired difference [interval] (discordant a/b)"], prow,
                      "paired differences (same episodes)")  # fmt: skip
    return out


def sweep_html(result: Any, outcomes: list[str] | None = None) -> str:
    """HTML tables of a :class:`depletion.SweepResult`: per outcome, a row per point, a column per policy."""
    from depletion.sweeps import outcome_table, shown_outcomes

    meta, rows = result.meta, result.rows
    pols = meta["policies"]
    axes = [a["name"] for a in meta["grid"]]
    parts = []
    for o in shown_outcomes(rows, outcomes):
        table = []
        for first, by in outcome_table(meta, rows, o):
            vals = [html.escape(_fmt_axis(first[a])) for a in axes]
            table.append([*vals, *(_cell(by[q]) if q in by else "" for q in pols)])
        state = "complete" if meta.get("complete") else "INCOMPLETE"
        cap = f"{o}: sweep of {meta.get('scenario_name')}, {len(meta['points'])} points, seed {meta['seed']} ({state})"
        parts.append(_table([*axes, *pols], table, cap))
    return "".join(parts)


def _fmt_axis(v: Any) -> str:
    import json

    if isinstance(v, str):
        return v
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return f"{v:g}"


def enable_html() -> bool:
    """Show :class:`depletion.Result` and :class:`depletion.SweepResult` as HTML tables in IPython/Jupyter.

    Registers :func:`result_html` and :func:`sweep_html` with the running
    IPython's HTML formatter (which takes precedence over the classes' own
    ``_repr_html_``). Returns False outside IPython.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None:
        return False
    from depletion.api import Result
    from depletion.sweeps import SweepResult

    fmt = ip.display_formatter.formatters["text/html"]
    fmt.for_type(Result, result_html)
    fmt.for_type(SweepResult, sweep_html)
    return True
