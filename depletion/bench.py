"""Speed measurements behind ``depletion bench`` and ``benchmarks/bench.py``.

Everything is reported as rates and ratios measured in the same run on the
same machine: episodes and events per second per core for each policy, the
1-to-N-thread speed-up, the cold-compile and cached start-up times of a
fresh process, and the speed ratio against the plain-Python reference
implementation (``tests/reference.py``) on the same scenario.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _timed_rows(inputs: Any, seed: int, n: int) -> tuple[float, Any]:
    from depletion.engine import simulate_rows

    t = time.perf_counter()
    rows = simulate_rows(inputs, seed, 0, n)
    return time.perf_counter() - t, rows


def _startup(cache_dir: str | None, episodes: int = 1000) -> float:
    """Wall time of a fresh ``depletion run --episodes N`` process."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    cmd = [sys.executable, "-m", "depletion.cli", "run", "--episodes", str(episodes), "--policy", "alloc_oom"]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def run_bench(
    scenario: str | Path | None,
    episodes: int = 200_000,
    policies: list[str] | None = None,
    reference_episodes: int = 200,
    startup: bool = True,
) -> dict[str, Any]:
    """Measure the engine; see the module docstring for what is reported.

    Parameters
    ----------
    scenario : path or None
        Scenario file (default: MODEL.md defaults, as ``configs/default.toml``).
    episodes : int
        Episodes per policy and timing.
    policies : list of str
        Policies to time.
    reference_episodes : int
        Episodes for the plain-Python reference (0 skips it).
    startup : bool
        Also time cold-compile and cached start-up in fresh processes.

    Returns
    -------
    dict
        The report (JSON-able).
    """
    import numba
    import numpy as np

    from depletion.config import load_scenario
    from depletion.engine import COL, build_inputs

    sc = load_scenario(scenario)
    policies = policies or ["tif_memdie", "alloc_oom"]
    nthreads = numba.config.NUMBA_NUM_THREADS
    report: dict[str, Any] = {"scenario": sc.name, "episodes": episodes, "cpu_threads": nthreads, "policies": {}}
    for p in policies:
        inp = build_inputs(sc.params, p)
        _timed_rows(inp, 1, 2000)  # compile / load outside the timing
        numba.set_num_threads(1)
        t1, rows = _timed_rows(inp, 1, episodes)
        numba.set_num_threads(nthreads)
        tn, _ = _timed_rows(inp, 1, episodes)
        ev = float(np.mean(rows[:, COL["events"]]))
        report["policies"][p] = {
            "episodes_per_s_1_thread": episodes / t1,
            "episodes_per_s_all_threads": episodes / tn,
            "speedup": t1 / tn,
            "events_per_episode": ev,
            "events_per_s_per_core": episodes * ev / t1,
            "ns_per_event": 1e9 * t1 / (episodes * ev),
        }
    if reference_episodes > 0:
        ref = REPO / "tests" / "reference.py"
        if ref.exists():
            sys.path.insert(0, str(ref.parent))
            try:
                from reference import simulate_reference  # type: ignore[import-not-found]

                p = policies[0]
                t = time.perf_counter()
                simulate_reference(sc.params, p, reference_episodes, 1)
                tr = (time.perf_counter() - t) / reference_episodes
                fast = 1.0 / report["policies"][p]["episodes_per_s_1_thread"]
                report["reference"] = {"policy": p, "episodes": reference_episodes, "s_per_episode": tr,
                                       "speed_ratio_1_thread": tr / fast}  # fmt: skip
            finally:
                sys.path.remove(str(ref.parent))
        else:
            report["reference"] = "tests/reference.py not found (installed package without the repository)"
    if startup:
        with tempfile.TemporaryDirectory() as d:
            report["cold_start_s"] = _startup(d)
            report["cached_start_s"] = _startup(d)
    return report


def run_workers_bench(scenario: str | Path | None, episodes: int, policies: list[str], workers: int) -> dict:
    """Speed-up of a sweep on a local Dask cluster of ``workers`` processes over one worker process.

    Every worker gets the same share of the CPUs (``NUMBA_NUM_THREADS`` =
    CPUs // ``workers``, as ``--workers`` sets it), so the ratio measures how
    the sweep scales with workers (ideal: ``workers``). Both clusters are
    started and warmed up (every worker loads the cached kernels) outside
    the timing; the sweep is the same 4-point grid over
    ``threads`` with ``episodes`` per point and policy, in chunks of
    ``episodes // 8``, and the two results must be equal.
    """
    import logging

    import distributed

    from depletion.api import chunk_values
    from depletion.config import load_scenario
    from depletion.sweeps import run_sweep

    sc = load_scenario(scenario)
    t0 = int(sc["threads"]["value"]) if sc["threads"]["dist"] == "fixed" else 32
    grid = [f"threads={','.join(str(max(1, t0 * k // 4)) for k in (2, 3, 4, 5))}"]
    out: dict[str, Any] = {"workers": workers, "grid": grid, "episodes_per_point": episodes, "policies": policies}
    rows = {}
    per = max(1, (os.cpu_count() or 1) // workers)
    out["numba_threads_per_worker"] = per
    for w in (1, workers):
        with distributed.LocalCluster(
            n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR,
            env={"NUMBA_NUM_THREADS": str(per)},
        ) as lc, distributed.Client(lc) as cl:  # fmt: skip
            cl.run(chunk_values, sc.params, policies[0], 0, 0, 10, [], False)  # load the kernels everywhere
            t = time.perf_counter()
            res = run_sweep(sc, grid, policies=policies, episodes=episodes, chunk_size=max(1, episodes // 8),
                            client=cl)  # fmt: skip
            out[f"seconds_{w}_worker" + ("s" if w > 1 else "")] = time.perf_counter() - t
            rows[w] = res.rows
    out["speedup"] = out["seconds_1_worker"] / out[f"seconds_{workers}_workers"] if workers > 1 else 1.0
    out["identical"] = rows[1] == rows[workers]
    return out


def format_report(r: dict[str, Any]) -> str:
    """The report as readable lines."""
    lines = [f"scenario {r['scenario']}: {r['episodes']} episodes per timing, {r['cpu_threads']} CPU threads"]
    for p, m in r["policies"].items():
        lines.append(
            f"  {p:16s} {m['episodes_per_s_1_thread']:>10,.0f} episodes/s per core, "
            f"{m['episodes_per_s_all_threads']:>10,.0f} on all threads (speed-up {m['speedup']:.2f}), "
            f"{m['events_per_episode']:.0f} events/episode, {m['ns_per_event']:.0f} ns/event"
        )
    ref = r.get("reference")
    if isinstance(ref, dict):
        lines.append(
            f"  reference ({ref['policy']}): {1e3 * ref['s_per_episode']:.1f} ms/episode, "
            f"the kernel is {ref['speed_ratio_1_thread']:,.0f}x faster on one core"
        )
    elif ref:
        lines.append(f"  reference: {ref}")
    w = r.get("workers")
    if isinstance(w, dict):
        tn = w[f"seconds_{w['workers']}_workers"] if w["workers"] > 1 else w["seconds_1_worker"]
        lines.append(
            f"  Dask sweep ({w['grid'][0]}, {w['episodes_per_point']} episodes x {len(w['policies'])} policies "
            f"per point): {w['workers']} workers {w['speedup']:.2f}x faster than 1 worker "
            f"({w['seconds_1_worker']:.1f} s -> {tn:.1f} s), "
            f"results identical: {w['identical']}"
        )
    if "cold_start_s" in r:
        lines.append(f"  start-up of `depletion run --episodes 1000`: cold (compiling) {r['cold_start_s']:.1f} s, "
                     f"cached {r['cached_start_s']:.2f} s")  # fmt: skip
    return "\n".join(lines)
