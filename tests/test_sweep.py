"""Sweeps, results files, show/compare and sequential stopping.

Runs are small (a few thousand episodes of an 8-thread scenario), so the
file is fast; what is checked is exact: grid parsing, the identity of a
sweep point with ``simulate`` at the same parameters (one code path, common
random numbers), byte-identical resumed files, and one-line errors with exit
status 2 that leave files on disk untouched.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_error, cli_text
from typer.testing import CliRunner

from depletion import api
from depletion.cli import app
from depletion.config import load_scenario
from depletion.errors import DepletionError
from depletion.results import read_results, write_results
from depletion.sweeps import load_results, parse_axis, parse_values, run_sweep, split_sweep_table

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
# the tetsuo scenario cut down to cheap episodes in which alloc_oom victims fail ~12% of the time
TETSUO = ROOT / "configs" / "tetsuo-1000-threads.toml"
SMALL = {"threads": 32, "memory_gib": 0.25, "exit_allocs": 16}
N = 1500


def small(**kw):
    return load_scenario(TETSUO, {**SMALL, **kw})


# ---------------------------------------------------------------- grid syntax
@pytest.mark.parametrize(
    ("item", "name", "values"),
    [
        ("threads=1,2,4", "threads", [1, 2, 4]),
        ("threads=1..4", "threads", [1, 2, 3, 4]),
        ("threads=1..1024:log2", "threads", [2**k for k in range(11)]),
        ("threads=3..20:log2", "threads", [3, 6, 12]),
        ("memory_gib=1..1000:log10", "memory_gib", [1, 10, 100, 1000]),
        ("anon_fraction=0..1:5", "anon_fraction", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("victims=0..64:5", "victims", [0, 16, 32, 48, 64]),
        ("policy=tif_memdie,alloc_oom,fraction:0.25,fraction:0.75",
         "policy", ["tif_memdie", "alloc_oom", "fraction:0.25", "fraction:0.75"]),
        ("policies=v6", "policy", ["v6"]),
        ('hold_us={dist="exponential", mean=10},{dist="fixed", value=3}', "hold_us",
         [{"dist": "exponential", "mean": 10}, {"dist": "fixed", "value": 3}]),
        ("bystanders.atomic.rate_per_ms=0,5.5", "bystanders.atomic.rate_per_ms", [0, 5.5]),
        ("reaper=true,false", "reaper", [True, False]),
    ],
)  # fmt: skip
def test_grid_syntax(item, name, values):
    n, v = parse_axis(item)
    assert n == name
    assert v == values
    assert [type(x) for x in v] == [type(x) for x in values]


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("nosuch=1,2", "unknown parameter 'nosuch'"),
        ("threads", "expected name=v1,v2"),
        ("threads=", "no values"),
        ("threads=8..1", "empty range"),
        ("threads=1..x", "not a number"),
        ("threads=1..8:log3", "unknown range step 'log3'"),
        ("threads=0..8:log2", "start > 0"),
        ("anon_fraction=0.5..1", "whole numbers"),
        ("threads=1,,2", "empty value"),
        ("threads=1,1", "listed twice"),
        ("threads=1..8:1", "at least 2 points"),
        ("bystanders.nope.rate_per_ms=1", "unknown parameter"),
        ("threads=1 2", "not a value"),
    ],
)
def test_grid_errors(item, needle):
    with pytest.raises(DepletionError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        parse_axis(item)


def test_sweep_table_splits_axes_and_options():
    axes, opts = split_sweep_table({"threads": "1..4:log2", "policy": ["alloc_oom"], "episodes": 10, "seed": 3})
    assert axes == {"threads": [1, 2, 4], "policy": ["alloc_oom"]}
    assert opts == {"episodes": 10, "seed": 3}
    with pytest.raises(DepletionError, match="unknown parameter 'thread'"):
        split_sweep_table({"thread": [1]})
    assert parse_values("threads", [1, 2]) == [1, 2]


def test_bad_point_values_fail_before_running(tmp_path):
    out = tmp_path / "r.csv"
    with pytest.raises(DepletionError, match=r"grid point threads=-1: threads"):
        run_sweep(small(), ["threads=4,-1"], episodes=10, out=out)
    with pytest.raises(DepletionError, match="policy"):
        run_sweep(small(), ["policy=alloc_oom,nosuch"], episodes=10, out=out)
    assert not out.exists()


# ---------------------------------------------------------------- one code path, CRN
def test_sweep_point_equals_simulate():
    """A sweep point is ``simulate`` at the same parameters: same episodes, same estimates, bit for bit."""
    res = run_sweep(small(), ["threads=4,16"], policies=["tif_memdie", "alloc_oom"], episodes=N, seed=5,
                    chunk_size=700)  # fmt: skip
    for point, thr in enumerate([4, 16]):
        sim = api.simulate(small(threads=thr), N, 5, ["tif_memdie", "alloc_oom"], chunk_size=700)
        for pol in ("tif_memdie", "alloc_oom"):
            for name, e in sim.policies[pol].items():
                (r,) = [r for r in res.rows if r["point"] == point and r["policy"] == pol and r["outcome"] == name
                        and r["kind"] in ("proportion", "mean")]  # fmt: skip
                assert r["threads"] == thr
                assert r["estimate"] == e.get("p", e.get("mean")), (pol, name)
                assert (r["ci_low"], r["ci_high"], r["n"]) == (e["ci_low"], e["ci_high"], e["n"])
        d = sim.compare("tif_memdie", "alloc_oom")["victim_failed"]
        (r,) = [r for r in res.rows
                if r["point"] == point and r["kind"] == "paired_diff" and r["outcome"] == "victim_failed"]  # fmt: skip
        assert (r["estimate"], r["n10"], r["n01"], r["mcnemar_p"]) == (d["diff"], d["n10"], d["n01"], d["mcnemar_p"])


def test_points_share_random_numbers():
    """Common random numbers across points: a parameter that cannot change the path changes nothing else.

    ``stall_us`` only classifies waits, so every other outcome must be identical at every point.
    """
    res = run_sweep(small(), ["stall_us=10,1000,1e9"], policies=["alloc_oom"], episodes=N, seed=2)
    for o in ("exhausted", "victim_failed", "min_free", "resolve_us"):
        vals = {r["estimate"] for r in res.rows if r["outcome"] == o and r["kind"] in ("proportion", "mean")}
        assert len(vals) == 1, (o, vals)
    stalled = [r["estimate"] for r in res.rows if r["outcome"] == "stalled"]
    assert stalled[0] >= stalled[1] >= stalled[2]  # a stricter threshold counts more stalls, on the same episodes


def test_paired_rows_consistent_with_margins():
    res = run_sweep(small(), None, policies=["tif_memdie", "alloc_oom", "v6"], episodes=N, seed=1)
    by = {(r["policy"], r["vs"], r["outcome"], r["kind"]): r for r in res.rows}
    for a, b in (("tif_memdie", "alloc_oom"), ("tif_memdie", "v6"), ("alloc_oom", "v6")):
        for o in api.PROPORTIONS:
            d = by[(a, b, o, "paired_diff")]
            pa, pb = by[(a, None, o, "proportion")], by[(b, None, o, "proportion")]
            assert d["n11"] + d["n10"] == pa["count"] and d["n11"] + d["n01"] == pb["count"]
            assert d["n11"] + d["n10"] + d["n01"] + d["n00"] == N
            assert math.isclose(d["estimate"], pa["estimate"] - pb["estimate"], abs_tol=1e-12)
            assert d["ci_low"] <= d["estimate"] <= d["ci_high"]


# ---------------------------------------------------------------- results files
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_results_file_round_trip_and_pandas(tmp_path, suffix):
    import pandas as pd

    out = tmp_path / f"r{suffix}"
    res = run_sweep(small(), ["threads=2,4", "policy=tif_memdie,alloc_oom"], episodes=400, seed=3, out=out,
                    command=["depletion", "sweep", "x"])  # fmt: skip
    meta, rows = read_results(out)
    assert meta["complete"] is True and meta["seed"] == 3 and meta["policies"] == ["tif_memdie", "alloc_oom"]
    assert meta["scenario"] == json.loads(json.dumps(small().to_dict()))
    assert set(meta["versions"]) >= {"depletion", "numba", "numpy", "python"}
    assert meta["command"] == ["depletion", "sweep", "x"]
    assert len(rows) == len(res.rows)
    for a, b in zip(rows, res.rows):
        for k, v in b.items():
            assert a[k] == v or (isinstance(v, float) and math.isnan(v) and a[k] is None), k
    df = pd.read_csv(out, comment="#") if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == len(rows)
    ex = df[(df.outcome == "exhausted") & (df.kind == "proportion")]
    assert sorted(ex.threads.tolist()) == [2, 2, 4, 4]
    assert (ex["count"] / ex["n"] == ex["estimate"]).all()
    assert (ex.ci_low <= ex.estimate).all() and (ex.estimate <= ex.ci_high).all()
    from depletion.results import columns

    assert list(df.columns) == columns(["threads"]) == list(res.to_dataframe().columns)
    mine = res.to_dataframe()
    for c in ("estimate", "ci_low", "ci_high"):  # the numbers pandas reads are the ones written, to the bit
        assert np.array_equal(df[c].to_numpy(float), mine[c].to_numpy(float), equal_nan=True), c


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("precious")
    with pytest.raises(DepletionError, match="already exists"):
        run_sweep(small(), ["threads=2"], episodes=10, out=out)
    assert out.read_text() == "precious"


def _interrupt_after(k: int):
    def cb(s):
        if s["points_done"] >= k and s["point_fraction"] == 0.0:
            raise KeyboardInterrupt

    return cb


def test_interrupted_sweep_resumes_to_identical_file(tmp_path, monkeypatch):
    import depletion.sweeps as sw

    monkeypatch.setattr(sw, "SAVE_EVERY_S", 0.0)
    grid = ["threads=2,4,8,16", "policy=tif_memdie,alloc_oom"]
    whole = tmp_path / "whole.csv"
    run_sweep(small(), grid, episodes=600, seed=4, out=whole, chunk_size=250, command=["c"])
    part = tmp_path / "part.csv"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(small(), grid, episodes=600, seed=4, out=part, chunk_size=250, command=["c"],
                  progress=_interrupt_after(2))  # fmt: skip
    meta, rows = read_results(part)
    assert meta["complete"] is False and {r["point"] for r in rows} == {0, 1}
    assert "INCOMPLETE" in load_results(part).table()
    run_sweep(small(), grid, episodes=600, seed=4, out=part, chunk_size=250, command=["c"], resume=True)
    assert part.read_bytes() == whole.read_bytes()


def test_resume_against_a_different_sweep_is_refused(tmp_path):
    out = tmp_path / "r.csv"
    run_sweep(small(), ["threads=2,4"], episodes=300, seed=4, out=out)
    before = out.read_bytes()
    for kw, needle in (
        ({"grid": ["threads=2,8"]}, "grid"),
        ({"grid": ["threads=2,4"], "seed": 5}, "seed"),
        ({"grid": ["threads=2,4"], "episodes": 301}, "episodes"),
    ):
        args = {"episodes": 300, "seed": 4, **kw}
        with pytest.raises(DepletionError, match=f"different sweep.*{needle}"):
            run_sweep(small(), out=out, resume=True, **args)
    with pytest.raises(DepletionError, match="different sweep.*scenario"):
        run_sweep(small(stack_pages=5), ["threads=2,4"], episodes=300, seed=4, out=out, resume=True)
    assert out.read_bytes() == before
    with pytest.raises(DepletionError, match="no such results file"):
        run_sweep(small(), ["threads=2,4"], episodes=300, seed=4, out=tmp_path / "none.csv", resume=True)


def _write_ok(tmp_path) -> Path:
    out = tmp_path / "ok.csv"
    run_sweep(small(), ["threads=2,4"], policies=["tif_memdie", "alloc_oom"], episodes=300, seed=4, out=out)
    return out


def test_damaged_results_files_are_recognised(tmp_path):
    good = _write_ok(tmp_path)
    text = good.read_text()
    cases = {
        "truncated.csv": text[: len(text) // 2],
        "cut_at_row.csv": text[: text.rindex("\n", 0, text.index("# end")) + 1],
        "edited.csv": text.replace(",alloc_oom,", ",alloc_oom ,", 1),
        "foreign.csv": "a,b\n1,2\n",
        "badmeta.csv": text.replace("# {", "# {{", 1),
        "empty.csv": "",
    }
    for name, body in cases.items():
        p = tmp_path / name
        p.write_text(body)
        with pytest.raises(DepletionError, match=r"truncated|corrupt|not a depletion results file"):
            read_results(p)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DepletionError, match="not a depletion results file"):
        read_results(tmp_path / "bin.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(DepletionError, match="corrupt or truncated"):
        read_results(tmp_path / "bad.parquet")
    with pytest.raises(DepletionError, match="no such results file"):
        read_results(tmp_path / "missing.csv")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    out = _write_ok(tmp_path)
    before = out.read_bytes()
    meta, rows = read_results(out)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_results(out, meta, ["threads"], rows)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


# ---------------------------------------------------------------- sequential stopping
def test_sequential_stops_at_target():
    target = 0.01  # victim_failed ~ 0.12 under alloc_oom: about 4000 episodes are needed, several chunks
    res = api.simulate(small(), episodes=500, seed=1, policies=["alloc_oom"], chunk_size=500, target_halfwidth=target,
                       max_episodes=200_000, outcomes=["exhausted", "victim_failed"])  # fmt: skip
    assert res.stop == "target"
    assert 500 < res.episodes < 200_000 and res.episodes % 500 == 0
    for o in ("exhausted", "victim_failed"):
        e = res.policies["alloc_oom"][o]
        assert (e["ci_high"] - e["ci_low"]) / 2 <= target
    # one chunk fewer would not have met it: the rule stops at the first chunk that does
    prev = api.simulate(small(), episodes=res.episodes - 500, seed=1, policies=["alloc_oom"], chunk_size=500)
    assert any((prev.policies["alloc_oom"][o]["ci_high"] - prev.policies["alloc_oom"][o]["ci_low"]) / 2 > target
               for o in ("exhausted", "victim_failed"))  # fmt: skip
    # the estimates are exactly those of a fixed run of that length
    fixed = api.simulate(small(), episodes=res.episodes, seed=1, policies=["alloc_oom"], chunk_size=500)
    assert fixed.policies == res.policies


def test_sequential_relative_target_unreachable_hits_cap():
    # P(exhausted) = 0 with these reserves: a relative half-width can never be met
    res = api.simulate(small(memory_gib=64.0, threads=1), episodes=200, seed=1, policies=["alloc_oom"],
                       target_halfwidth="5%", max_episodes=1000, outcomes=["exhausted"], chunk_size=200)  # fmt: skip
    assert res.stop == "max_episodes" and res.episodes == 1000
    assert "target not met" in res.table()


def test_sequential_in_sweep_rows_say_why():
    res = run_sweep(small(), ["threads=2,16"], policies=["alloc_oom"], episodes=500, chunk_size=500, seed=2,
                    target_halfwidth=0.05, max_episodes=5000, outcomes=["victim_failed"])  # fmt: skip
    stops = {r["point"]: r["stop"] for r in res.rows}
    assert set(stops.values()) <= {"target", "max_episodes"}
    for r in res.rows:
        if r["outcome"] == "victim_failed" and r["kind"] == "proportion" and r["stop"] == "target":
            assert (r["ci_high"] - r["ci_low"]) / 2 <= 0.05


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"target_halfwidth": "x%"}, "target_halfwidth"),
        ({"target_halfwidth": "-1"}, "target_halfwidth"),
        ({"target_halfwidth": 0.1, "outcomes": ["nosuch"]}, "outcome"),
        ({"max_episodes": 10}, "go with target_halfwidth"),
        ({"target_halfwidth": 0.1, "max_episodes": 5}, "max_episodes"),
    ],
)
def test_sequential_bad_options(kw, needle):
    with pytest.raises(DepletionError, match=needle):
        api.simulate(small(), episodes=10, seed=1, **kw)


# ---------------------------------------------------------------- CLI
def test_cli_sweep_show_compare(tmp_path):
    out = tmp_path / "s.csv"
    r = runner.invoke(app, ["sweep", "--grid", "threads=2,8", "--policy", "tif_memdie", "--policy", "alloc_oom",
                            "--set", "memory_gib=1", "-n", "400", "--out", str(out), "--quiet"])  # fmt: skip
    assert r.exit_code == 0, cli_text(r)
    assert "exhausted:" in r.output and "tif_memdie" in r.output
    meta, _ = read_results(out)
    assert meta["command"][:2] == ["depletion", "sweep"] and "--quiet" not in meta["command"]
    s = runner.invoke(app, ["show", str(out), "--outcome", "victim_failed", "--outcome", "min_free"])
    assert s.exit_code == 0, cli_text(s)
    assert "victim_failed:" in s.output and "min_free:" in s.output and "exhausted:" not in s.output
    c = runner.invoke(app, ["compare", str(out), "--a", "alloc_oom", "--b", "tif_memdie"])
    assert c.exit_code == 0, cli_text(c)
    assert "alloc_oom - tif_memdie" in c.output and "McNemar" in c.output
    m = runner.invoke(app, ["show", str(out), "--meta"])
    assert json.loads(m.output)["seed"] == 0


def test_cli_sweep_bad_input(tmp_path):
    out = tmp_path / "s.csv"
    assert_one_error(runner.invoke(app, ["sweep", "--grid", "nosuch=1", "--out", str(out), "-q"]), "nosuch")
    assert_one_error(runner.invoke(app, ["sweep", "--grid", "threads=9..1", "--out", str(out), "-q"]), "empty range")
    assert_one_error(runner.invoke(app, ["sweep", "--grid", "threads=1", "--out", str(tmp_path / "x.txt"), "-q"]),
                     ".csv or .parquet")  # fmt: skip
    assert_one_error(runner.invoke(app, ["show", str(tmp_path / "none.csv")]), "no such results file")
    (tmp_path / "junk.csv").write_text("hello\n")
    assert_one_error(runner.invoke(app, ["show", str(tmp_path / "junk.csv")]), "not a depletion results file")
    good = _write_ok(tmp_path)
    assert_one_error(runner.invoke(app, ["compare", str(good), "--a", "alloc_oom", "--b", "v6"]), "v6")
    assert_one_error(runner.invoke(app, ["show", str(good), "-o", "nosuch"]), "nosuch")
    before = good.read_bytes()
    assert_one_error(runner.invoke(app, ["sweep", "--grid", "threads=2,4", "-n", "300", "-s", "9", "--out", str(good),
                                         "--resume", "-q"]), "different sweep")  # fmt: skip
    assert good.read_bytes() == before


def test_scenario_sweep_table(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('threads = 4\nmemory_gib = 1.0\n[sweep]\nepisodes = 300\nseed = 7\n'
                   'policy = ["alloc_oom"]\nreaper_lock_p = "0..1:3"\n')  # fmt: skip
    res = run_sweep(load_scenario(cfg))
    assert res.meta["episodes"] == 300 and res.meta["seed"] == 7 and res.meta["policies"] == ["alloc_oom"]
    assert res.meta["grid"] == [{"name": "reaper_lock_p", "values": [0.0, 0.5, 1.0]}]
    # --grid replaces the same axis and keeps the others
    res2 = run_sweep(load_scenario(cfg), ["reaper_lock_p=1.0", "threads=2,4"])
    assert [a["name"] for a in res2.meta["grid"]] == ["reaper_lock_p", "threads"] and len(res2.meta["points"]) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killed_sweep_process_keeps_points_and_resumes(tmp_path):
    """SIGKILL mid-sweep: atomic writes leave a valid file of finished points; --resume completes it exactly."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "depletion.cli", "sweep", "--grid", "threads=2,4,8,16,32,64,128,256",
            "--set", "memory_gib=1", "-n", "3000", "--chunk-size", "1000", "-q"]  # fmt: skip
    part = tmp_path / "part.csv"  # the command line (with --out) is in the file: both runs write to this path
    subprocess.run([*base, "--out", str(part)], env=env, check=True, capture_output=True)
    whole = tmp_path / "whole.csv"
    part.rename(whole)
    proc = subprocess.Popen([*base, "--out", str(part)], env={**env, "DEPLETION_SAVE_EVERY_S": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists():
            try:
                _, rows = read_results(part)
            except DepletionError:
                rows = []
            if rows:
                break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta, rows = read_results(part)
    done = {r["point"] for r in rows}
    assert done and np.all(np.diff(sorted(done)) == 1)
    assert not meta["complete"]  # killed after its first point; the later ones take much longer
    r = subprocess.run([*base, "--out", str(part), "--resume"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert part.read_bytes() == whole.read_bytes()


PAPER = sorted((ROOT / "configs" / "paper").glob("*.toml"))


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs_are_valid_sweeps(path):
    """Every paper sweep loads, every point validates, and its options are legal (running them is `make figures`)."""
    from depletion.api import check_options, check_policies, parse_target

    sc = load_scenario(path)
    axes, opts = split_sweep_table(sc.extra.get("sweep"))
    assert axes, "a paper config sweeps something"
    pols = axes.pop("policy", None) or sc["policies"]
    check_policies([str(p) for p in pols])
    names = list(axes)
    import itertools

    for vals in itertools.product(*(axes[n] for n in names)):
        sc.with_overrides(dict(zip(names, vals)))
    full = {"episodes": 100_000, "seed": 0, "chunk_size": 1 << 16, "ci_method": "wilson", "confidence": 0.95,
            "max_episodes": None, **opts}  # fmt: skip
    check_options(full["episodes"], full["seed"], full["chunk_size"], full["ci_method"], full["confidence"],
                  full["max_episodes"])  # fmt: skip
    if "target_halfwidth" in opts:
        parse_target(opts["target_halfwidth"], opts.get("outcomes"))
