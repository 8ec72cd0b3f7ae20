"""The ``depletion`` command line: a thin layer over :mod:`depletion.api`.

Heavy imports (numba, scipy) happen inside the commands, so ``depletion
--help`` is fast. Bad input of any kind prints one ``error:`` line and exits
with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from depletion.errors import DepletionError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Monte Carlo analyser of Linux memory-reserve depletion under OOM.",
    pretty_exceptions_enable=False,
)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _overrides(items: list[str] | None) -> dict:
    from depletion.config import parse_set

    out: dict = {}
    for it in items or []:
        k, v = parse_set(it)
        out[k] = v
    return out


TARGET_OPT = typer.Option(
    "--target-halfwidth", help="sequential stopping: interval half-width to reach, e.g. 0.001 or 5% (relative)"
)
MAXEP_OPT = typer.Option("--max-episodes", help="cap on episodes per policy (and point) with --target-halfwidth")
OUTCOME_OPT = typer.Option(
    "--outcome", "-o", help="outcome the target applies to (repeatable; default exhausted, victim_failed, stalled)"
)


@app.command()
def run(
    scenario: Annotated[Path | None, typer.Argument(help="TOML scenario file; default: MODEL.md defaults")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy (repeatable)")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="episodes per policy")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", "-s", help="random seed")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value override (TOML value)")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    ci_method: Annotated[str, typer.Option("--ci-method", help="wilson, clopper-pearson or jeffreys")] = "wilson",
    confidence: Annotated[float, typer.Option("--confidence", help="interval level")] = 0.95,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="episodes per kernel call")] = 1 << 16,
    target_halfwidth: Annotated[str | None, TARGET_OPT] = None,
    max_episodes: Annotated[int | None, MAXEP_OPT] = None,
    outcome: Annotated[list[str] | None, OUTCOME_OPT] = None,
) -> None:
    """Simulate a scenario under one or more policies and print the estimates.

    With two or more policies it also prints their paired differences.
    """
    try:
        from depletion.api import simulate
        from depletion.config import load_scenario

        sc = load_scenario(scenario, _overrides(set_))
        res = simulate(
            sc, episodes=episodes, seed=seed, policies=policy or None, ci_method=ci_method,
            confidence=confidence, chunk_size=chunk_size, target_halfwidth=target_halfwidth,
            max_episodes=max_episodes, outcomes=outcome or None,
        )  # fmt: skip
    except DepletionError as e:
        _fail(str(e))
        return
    if json_:
        typer.echo(res.to_json())
    else:
        typer.echo(res.table())


def _command(name: str, scenario: Path | None, opts: list[tuple[str, object]]) -> list[str]:
    """A canonical command line for the metadata.

    Only what decides the answer is recorded (not --resume, --quiet, --workers or --scheduler), so a resumed
    or distributed sweep's file equals an uninterrupted in-process one's.
    """
    cmd = ["depletion", name] + ([str(scenario)] if scenario is not None else [])
    for flag, v in opts:
        if v is None or v == [] or v is False:
            continue
        for x in v if isinstance(v, list) else [v]:
            cmd += [flag] if x is True else [flag, str(x)]
    return cmd


def _sequential(sc: object, target: str | None) -> bool:
    table = getattr(sc, "extra", {}).get("sweep")
    return target is not None or (isinstance(table, dict) and table.get("target_halfwidth") is not None)


class _Bar:
    """A rich progress bar on stderr: points done, episodes per second, time left."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[points]} points"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )  # fmt: skip
        self.task = None

    def __enter__(self) -> _Bar:
        self.p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(*exc)

    def __call__(self, s: dict) -> None:
        rate = s["episodes"] / s["elapsed_s"] if s["elapsed_s"] > 0 else 0.0
        fields = {"points": f"{s['points_done']}/{s['points_total']}", "rate": f"{rate:,.0f} episodes/s"}
        if self.task is None:
            self.task = self.p.add_task("sweep", total=s["points_total"], completed=s["points_done"], **fields)
        self.p.update(self.task, completed=s["points_done"] + s["point_fraction"], **fields)


@app.command()
def sweep(
    scenario: Annotated[Path | None, typer.Argument(help="TOML scenario; its [sweep] table gives the grid")] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", "-g", help="axis name=v1,v2,... or name=a..b[:log2|:log10|:N] (repeatable)"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="results file (.csv or .parquet)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="finish the interrupted sweep in --out")] = False,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy (repeatable)")] = None,
    episodes: Annotated[int | None, typer.Option("--episodes", "-n", help="episodes per point and policy")] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s", help="random seed")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value override of the base scenario")] = None,
    ci_method: Annotated[str | None, typer.Option("--ci-method", help="wilson, clopper-pearson or jeffreys")] = None,
    confidence: Annotated[float | None, typer.Option("--confidence", help="interval level")] = None,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", help="episodes per kernel call")] = None,
    target_halfwidth: Annotated[str | None, TARGET_OPT] = None,
    max_episodes: Annotated[int | None, MAXEP_OPT] = None,
    outcome: Annotated[list[str] | None, OUTCOME_OPT] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="run on a local Dask cluster of N worker processes")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="run on the Dask cluster at this address (tcp://HOST:PORT)")
    ] = None,
) -> None:
    """Run a grid of scenarios (every point and policy on the same episodes) and save a results file.

    With --workers or --scheduler the chunks run on Dask (pip install '.[distributed]'); the results file is
    the same, byte for byte.
    """
    from contextlib import nullcontext

    try:
        from depletion.config import load_scenario
        from depletion.sweeps import run_sweep

        sc = load_scenario(scenario, _overrides(set_))
        if out is None:
            out = Path("results") / f"{sc.name}.csv"
        cmd = _command("sweep", scenario, [
            ("--grid", grid or []), ("--out", str(out)), ("--policy", policy or []), ("--episodes", episodes),
            ("--seed", seed), ("--set", set_ or []), ("--ci-method", ci_method), ("--confidence", confidence),
            ("--chunk-size", chunk_size if _sequential(sc, target_halfwidth) else None),
            ("--target-halfwidth", target_halfwidth), ("--max-episodes", max_episodes),
            ("--outcome", outcome or []),
        ])  # fmt: skip
        bar = nullcontext(None) if quiet else _Bar()
        with bar as cb:
            res = run_sweep(
                sc, grid or None, policies=policy or None, episodes=episodes, seed=seed, out=out, resume=resume,
                target_halfwidth=target_halfwidth, max_episodes=max_episodes, outcomes=outcome or None,
                ci_method=ci_method, confidence=confidence, chunk_size=chunk_size, progress=cb, command=cmd,
                workers=workers, scheduler=scheduler,
            )  # fmt: skip
    except DepletionError as e:
        _fail(str(e))
        return
    except KeyboardInterrupt:
        typer.echo(f"interrupted: finished points are saved in {out}; finish with --resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(res.table())
    typer.echo(f"\nresults: {out}")


@app.command()
def show(
    results: Annotated[Path, typer.Argument(help="results file of a sweep")],
    outcome: Annotated[list[str] | None, typer.Option("--outcome", "-o", help="outcome (repeatable)")] = None,
    meta: Annotated[bool, typer.Option("--meta", help="print the metadata (JSON) instead")] = False,
) -> None:
    """Print a results file as tables: one per outcome, a row per point, a column per policy."""
    try:
        from depletion.sweeps import load_results

        res = load_results(results)
        if meta:
            import json

            typer.echo(json.dumps(res.meta, indent=2, sort_keys=True))
            return
        typer.echo(res.table(outcome or None))
    except DepletionError as e:
        _fail(str(e))


@app.command()
def compare(
    results: Annotated[Path, typer.Argument(help="results file of a sweep (or a run with several policies)")],
    a: Annotated[str, typer.Option("--a", help="policy A")],
    b: Annotated[str, typer.Option("--b", help="policy B")],
    outcome: Annotated[list[str] | None, typer.Option("--outcome", "-o", help="outcome (repeatable)")] = None,
) -> None:
    """Print the paired differences A - B at every point (same episodes), with McNemar's exact test."""
    try:
        from depletion.sweeps import load_results

        typer.echo(load_results(results).compare(a, b, outcome or None))
    except DepletionError as e:
        _fail(str(e))


@app.command()
def rare(
    scenario: Annotated[Path | None, typer.Argument(help="TOML scenario; its [tilt] table gives the proposal")] = None,
    tilt: Annotated[
        list[str] | None, typer.Option("--tilt", "-t", help="name=proposal value (TOML), e.g. exit_allocs=8")
    ] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy (repeatable)")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="tilted episodes per policy")] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", "-s", help="random seed")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value override of the scenario")] = None,
    outcome: Annotated[str, typer.Option("--outcome", "-o", help="0/1 outcome to estimate")] = "exhausted",
    confidence: Annotated[float, typer.Option("--confidence", help="interval level")] = 0.95,
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Estimate a rare probability (P(exhausted) down to 1e-9) by importance sampling.

    Episodes are drawn from a tilted workload (--tilt, or the scenario's [tilt] table) and weighted by their
    likelihood ratio; with no tilt this is plain sampling.
    """
    try:
        from depletion.config import load_scenario
        from depletion.rare import estimate_rare

        sc = load_scenario(scenario, _overrides(set_))
        table = sc.extra.get("tilt", {})
        if not isinstance(table, dict):
            raise DepletionError("tilt: expected a table of parameter = proposal value")
        tl = dict(table)
        tl.update(_overrides(tilt))
        pols = policy or list(sc["policies"])
        res = {p: estimate_rare(sc, p, tl, episodes, seed, outcome=outcome, confidence=confidence) for p in pols}
    except DepletionError as e:
        _fail(str(e))
        return
    if json_:
        import json

        from depletion.api import _finite

        typer.echo(json.dumps(_finite({"scenario": sc.name, "episodes": episodes, "seed": seed, "outcome": outcome,
                                       "tilt": tl, "policies": res}), allow_nan=False))  # fmt: skip
        return
    from depletion.api import _fmt_p

    typer.echo(f"scenario {sc.name}: P({outcome}) by importance sampling, {episodes} tilted episodes, seed {seed}, "
               f"{confidence * 100:g}% intervals; tilt {tl or 'none (plain sampling)'}")  # fmt: skip
    for p, r in res.items():
        if r["hits"] == 0:
            typer.echo(f"  {p:16s} no hits in {r['n']} episodes: the tilt does not reach the event; no estimate")
            continue
        rel = "inf" if r["rel_err"] == float("inf") else f"{r['rel_err']:.3f}"
        typer.echo(
            f"  {p:16s} {_fmt_p(r['p'])} [{_fmt_p(r['ci_low'])}, {_fmt_p(r['ci_high'])}]  rel. error {rel}, "
            f"{r['hits']} hits, ESS {r['ess']:.0f}, mean weight {r['mean_weight']:.3f} ± {r['mean_weight_se']:.3f}"
        )
        if r["hits"] > 0 and r["ess"] < 100:
            typer.echo("    warning: ESS < 100, the weights are heavy-tailed and the interval may be optimistic")
        if abs(r["mean_weight"] - 1.0) > 4 * r["mean_weight_se"] + 1e-12:
            typer.echo("    warning: the mean weight is not 1 within 4 standard errors: the tilt is too strong")


@app.command()
def bench(
    scenario: Annotated[Path | None, typer.Argument(help="TOML scenario; default: configs/default.toml values")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="episodes per policy and timing")] = 200_000,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy (repeatable)")] = None,
    reference_episodes: Annotated[
        int, typer.Option("--reference-episodes", help="episodes for the Python reference (0: skip)")
    ] = 200,
    startup: Annotated[bool, typer.Option("--startup/--no-startup", help="time cold and cached start-up")] = True,
    workers: Annotated[
        int | None, typer.Option("--workers", help="also time a Dask sweep on N workers against 1 worker")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Measure speed: episodes/s per core, thread speed-up, start-up, ratio to the reference."""
    if episodes < 1 or reference_episodes < 0:
        _fail("--episodes must be >= 1 and --reference-episodes >= 0")
    try:
        from depletion.bench import run_bench

        report = run_bench(scenario, episodes, policy or ["tif_memdie", "alloc_oom"], reference_episodes, startup)
        if workers is not None:
            if workers < 1:
                _fail(f"--workers: expected a whole number >= 1, got {workers}")
            from depletion.bench import run_workers_bench
            from depletion.distributed import _dask

            _dask()  # a clear error without the extra
            report["workers"] = run_workers_bench(
                scenario, episodes, policy or ["tif_memdie", "alloc_oom"], workers
            )
    except DepletionError as e:
        _fail(str(e))
        return
    if json_:
        import json

        typer.echo(json.dumps(report))
    else:
        from depletion.bench import format_report

        typer.echo(format_report(report))


@app.command()
def plot(
    results: Annotated[Path, typer.Argument(help="results file of a sweep")],
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="curve, heatmap, diff, cdf or timeline (default: chosen)")
    ] = None,
    episode: Annotated[
        list[int] | None, typer.Option("--episode", "-e", help="timeline: episode to trace (repeatable)")
    ] = None,
    outcome: Annotated[
        list[str] | None, typer.Option("--outcome", "-o", help="outcome (repeatable; default exhausted)")
    ] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy to draw (repeatable)")] = None,
    x: Annotated[str | None, typer.Option("--x", help="swept parameter on the x axis (or policy)")] = None,
    y: Annotated[str | None, typer.Option("--y", help="heatmap: swept parameter on the y axis")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="fix a swept parameter: name=value (repeatable)")
    ] = None,
    a: Annotated[str | None, typer.Option("--a", help="diff: policy A of A - B")] = None,
    b: Annotated[str | None, typer.Option("--b", help="diff: policy B of A - B")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="figure file (.pdf, .png or .svg)")] = None,
    format_: Annotated[str | None, typer.Option("--format", help="formats, comma-separated: pdf,png")] = None,
    width: Annotated[str | None, typer.Option("--width", help="one (3.5 in) or two (7.16 in) columns")] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="resolution of PNG files")] = 300,
    logx: Annotated[bool | None, typer.Option("--logx/--linear-x", help="x scale (default: log if decades)")] = None,
    logy: Annotated[bool | None, typer.Option("--logy/--linear-y", help="y scale (default: log if decades)")] = None,
) -> None:
    """Draw a results file: curve (outcome vs a swept parameter), heatmap, diff (paired A - B), cdf, or the
    timeline of chosen episodes (free pages over time against the floors, re-simulated with tracing)."""
    try:
        from depletion.plot import KINDS, WIDTHS, figure_metadata, save_figure

        if kind is not None and kind not in KINDS:
            raise DepletionError(f"--kind: unknown {kind!r}; allowed: {', '.join(KINDS)}")
        if width is not None and width not in WIDTHS:
            raise DepletionError(f"--width: unknown {width!r}; allowed: {', '.join(WIDTHS)}")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from depletion.plot import choose_kind
        from depletion.plot import plot as draw
        from depletion.sweeps import load_results

        res = load_results(results)
        kind = kind or choose_kind(res)
        if kind != "diff" and (a is not None or b is not None):
            raise DepletionError("--a/--b: only with --kind diff")
        if kind != "timeline" and episode:
            raise DepletionError("--episode: only with --kind timeline")
        if episode and any(e < 0 for e in episode):
            raise DepletionError(f"--episode: episode indices are >= 0, got {min(episode)}")
        target = out if out is not None else results.with_name(f"{results.stem}-{kind}")
        cmd = _command("plot", results, [
            ("--kind", kind), ("--episode", episode or []), ("--outcome", outcome or []), ("--policy", policy or []),
            ("--x", x), ("--y", y),
            ("--where", where or []), ("--a", a), ("--b", b), ("--out", str(target)), ("--format", format_),
            ("--width", width), ("--dpi", dpi if dpi != 300 else None),
            ("--logx" if logx else "--linear-x", logx is not None or None),
            ("--logy" if logy else "--linear-y", logy is not None or None),
        ])  # fmt: skip
        opts: dict = {"outcome": outcome or None, "policies": policy or None, "x": x, "where": where or None,
                      "width": width, "logx": logx}  # fmt: skip
        if kind == "curve":
            opts["logy"] = logy
        elif kind == "heatmap":
            opts.update(y=y, logx=None)
        elif kind == "timeline":
            if outcome:
                raise DepletionError("--outcome: not used by --kind timeline (it draws free pages over time)")
            opts = {"episodes": episode or [], "policies": policy or None, "where": where or None,
                    "width": width or "two"}  # fmt: skip
        elif kind == "diff":
            if policy:
                raise DepletionError("--policy: not used by --kind diff; give --a and --b")
            opts.update(a=a, b=b)
        if kind != "heatmap" and y is not None:
            raise DepletionError("--y: only with --kind heatmap")
        artists = draw(res, kind, **opts)
        shown = outcome or {"cdf": ["min_free_frac", "resolve_us"], "timeline": ["free pages"]}.get(kind, ["exhausted"])
        title = f"{res.meta.get('scenario_name')}: {kind} of {', '.join(shown)}"
        md = figure_metadata(" ".join(cmd), results, res, title)
        written = save_figure(artists.figure, target, format_, dpi=dpi, metadata=md)
        plt.close(artists.figure)
    except DepletionError as e:
        _fail(str(e))
        return
    for p in written:
        typer.echo(str(p))


def main() -> None:
    """Entry point of the ``depletion`` script: usage errors become one ``error:`` line, exit 2."""
    try:
        rv = app(standalone_mode=False)
    except DepletionError as e:  # pragma: no cover - commands catch their own
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:
        # Click's usage errors (typer vendors Click in recent versions, so match by shape)
        code = getattr(e, "exit_code", None)
        if type(e).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # `depletion` alone: the help was printed
        if isinstance(code, int) and hasattr(e, "format_message"):
            print(f"error: {e.format_message()}", file=sys.stderr)
            sys.exit(code)
        if type(e).__name__ == "Abort":
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
