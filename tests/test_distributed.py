"""Sweeps on a Dask cluster give the in-process answer, byte for byte.

One ``LocalCluster`` of 2 worker processes is shared by the module (starting
one costs a few seconds). The checks are exact: the results file of a
distributed sweep equals the in-process file whatever the number of workers,
the chunk size (of a fixed-size run) or the order in which chunks finish, and
still does after a worker process is killed mid-sweep.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")  # the optional extra; the test extra installs it

from typer.testing import CliRunner  # noqa: E402

from depletion import api  # noqa: E402
from depletion.cli import app  # noqa: E402
from depletion.config import load_scenario  # noqa: E402
from depletion.distributed import run_points  # noqa: E402
from depletion.errors import DepletionError  # noqa: E402
from depletion.sweeps import run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TETSUO = ROOT / "configs" / "tetsuo-1000-threads.toml"
GRID = ["threads=8,16,32", "policy=tif_memdie,alloc_oom"]


def small(**kw):
    return load_scenario(TETSUO, {"threads": 32, "memory_gib": 0.25, "exit_allocs": 16, **kw})


@pytest.fixture(scope="module")
def client():
    import logging

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR,
        env={"NUMBA_NUM_THREADS": "1"},
    )  # fmt: skip
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


@pytest.fixture(scope="module")
def local_file(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("local") / "r.csv"
    run_sweep(small(), GRID, episodes=2400, chunk_size=600, seed=3, out=out, command=["c"])
    return out.read_bytes()


def test_distributed_file_is_identical(client, local_file, tmp_path):
    # a different chunk size on the cluster: a fixed-size run's numbers do not depend on it
    out = tmp_path / "r.csv"
    run_sweep(small(), GRID, episodes=2400, chunk_size=250, seed=3, out=out, command=["c"], client=client)
    assert out.read_bytes() == local_file


def test_completion_order_does_not_matter(client):
    """Points submitted in reverse order, chunks finishing in any order: same estimates as in-process."""
    sc = small()
    pols = ["tif_memdie", "alloc_oom"]
    states = {i: api.PointState(sc.with_overrides(threads=t), pols, 2000, 300) for i, t in enumerate((4, 8, 16))}
    got: dict = {}
    run_points(client, states, 11, lambda i, r: got.__setitem__(i, r), order=[2, 1, 0])
    for i, t in enumerate((4, 8, 16)):
        ref = api.run_point(api.PointState(sc.with_overrides(threads=t), pols, 2000, 2000), 11)
        assert got[i].estimates(0.95, "wilson") == ref.estimates(0.95, "wilson")
        assert got[i].pair_estimates(0.95) == ref.pair_estimates(0.95)


def test_sequential_stopping_matches(client):
    kw = dict(episodes=500, seed=1, policies=["alloc_oom"], chunk_size=500, target_halfwidth=0.01,
              max_episodes=50_000, outcomes=["victim_failed"])  # fmt: skip
    here = api.simulate(small(), **kw)
    there = api.simulate(small(), client=client, **kw)
    assert here.stop == there.stop == "target"
    assert here.episodes == there.episodes
    assert here.to_dict() == there.to_dict()


def test_killed_worker_loses_nothing(client, local_file, tmp_path):
    """SIGKILL one worker process mid-sweep: its chunks are run again and the file is unchanged."""
    killed = []

    def kill_once(s):
        if s["episodes"] > 0 and not killed:
            pids = client.run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    out = tmp_path / "r.csv"
    run_sweep(small(), GRID, episodes=2400, chunk_size=300, seed=3, out=out, command=["c"], client=client,
              progress=kill_once)  # fmt: skip
    assert killed
    assert out.read_bytes() == local_file
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_cli_workers_flag_gives_the_same_file(tmp_path):
    args = ["sweep", "--grid", "threads=8,16", "--set", "memory_gib=0.25", "-n", "600", "-q"]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    r1 = CliRunner().invoke(app, [*args, "--out", str(a)])
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(app, [*args, "--out", str(b), "--workers", "2"])
    assert r2.exit_code == 0, r2.output
    # the command line (with --out) is recorded: compare everything but it
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    assert la[2:-1] == lb[2:-1]
    assert la[1].replace(str(a), "X") == lb[1].replace(str(b), "X")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "0"], "workers"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not several"),
        (["--scheduler", "tcp://127.0.0.1:1"], "cannot connect"),
    ],
)
def test_cli_bad_cluster_options(tmp_path, args, needle):
    r = CliRunner().invoke(app, ["sweep", "--grid", "threads=2", "-n", "10", "-q", "--out", str(tmp_path / "x.csv"),
                                 *args])  # fmt: skip
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.output
    assert not (tmp_path / "x.csv").exists()


def test_keep_episodes_needs_local():
    with pytest.raises(DepletionError, match="keep_episodes"):
        api.simulate(small(), 10, client=object(), keep_episodes=True)


def test_bench_workers_reports_speedup():
    r = CliRunner().invoke(app, ["bench", "--no-startup", "--reference-episodes", "0", "-n", "2000", "-p", "alloc_oom",
                                 "--workers", "2", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    import json

    w = json.loads(r.output)["workers"]
    assert w["workers"] == 2 and w["identical"] is True
    assert w["speedup"] == pytest.approx(w["seconds_1_worker"] / w["seconds_2_workers"])


def test_resume_on_the_cluster(client, local_file, tmp_path, monkeypatch):
    """Interrupted in-process, finished on the cluster: the file an uninterrupted run writes."""
    import depletion.sweeps as sw

    monkeypatch.setattr(sw, "SAVE_EVERY_S", 0.0)

    def stop_after_one(s):
        if s["points_done"] >= 1 and s["point_fraction"] == 0.0:
            raise KeyboardInterrupt

    out = tmp_path / "r.csv"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(small(), GRID, episodes=2400, chunk_size=600, seed=3, out=out, command=["c"],
                  progress=stop_after_one)  # fmt: skip
    assert out.read_bytes() != local_file
    run_sweep(small(), GRID, episodes=2400, chunk_size=600, seed=3, out=out, command=["c"], client=client,
              resume=True)  # fmt: skip
    assert out.read_bytes() == local_file
