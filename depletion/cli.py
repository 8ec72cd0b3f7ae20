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
) -> None:
    """Simulate a scenario under one or more policies and print the estimates."""
    try:
        from depletion.api import simulate
        from depletion.config import load_scenario

        sc = load_scenario(scenario, _overrides(set_))
        res = simulate(
            sc, episodes=episodes, seed=seed, policies=policy or None, ci_method=ci_method,
            confidence=confidence, chunk_size=chunk_size,
        )  # fmt: skip
    except DepletionError as e:
        _fail(str(e))
        return
    if json_:
        typer.echo(res.to_json())
    else:
        typer.echo(res.table())


@app.command()
def bench(
    scenario: Annotated[Path | None, typer.Argument(help="TOML scenario; default: configs/default.toml values")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="episodes per policy and timing")] = 200_000,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy (repeatable)")] = None,
    reference_episodes: Annotated[
        int, typer.Option("--reference-episodes", help="episodes for the Python reference (0: skip)")
    ] = 200,
    startup: Annotated[bool, typer.Option("--startup/--no-startup", help="time cold and cached start-up")] = True,
    json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Measure speed: episodes/s per core, thread speed-up, start-up, ratio to the reference."""
    if episodes < 1 or reference_episodes < 0:
        _fail("--episodes must be >= 1 and --reference-episodes >= 0")
    try:
        from depletion.bench import run_bench

        report = run_bench(scenario, episodes, policy or ["tif_memdie", "alloc_oom"], reference_episodes, startup)
    except DepletionError as e:
        _fail(str(e))
        return
    if json_:
        import json

        typer.echo(json.dumps(report))
    else:
        from depletion.bench import format_report

        typer.echo(format_report(report))


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
