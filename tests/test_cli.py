"""The ``depletion`` command line: output shapes, ``--set``, configs, bad input, determinism.

Every bad input must end with exit status 2 and exactly one ``error:`` line
that names the key or file at fault, and never a Python traceback. Runs are
kept small (a few hundred episodes) so the whole file stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_error, cli_text
from typer.testing import CliRunner

from depletion.api import NUMBERS, PROPORTIONS
from depletion.cli import app
from depletion.config import load_scenario

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
N = 300  # episodes per policy in the in-process runs

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["run", *args])


def _stdout(result) -> str:
    """What went to stdout alone (older Click mixes stderr into it)."""
    try:
        return result.stdout
    except ValueError:  # pragma: no cover - Click < 8.2 without mix_stderr=False
        return result.output


def _ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}: {cli_text(result)!r} {result.exception!r}"


# --------------------------------------------------------------------------- output
def test_run_prints_a_table_with_each_policy():
    result = run("-n", str(N), "--seed", "3", "-p", "tif_memdie", "-p", "alloc_oom", "-p", "fraction:0.25")
    _ok(result)
    lines = _stdout(result).splitlines()
    assert lines[0].startswith("scenario default:") and f"{N} episodes" in lines[0] and "seed 3" in lines[0]
    head = lines[1].split()
    assert head == ["outcome", "tif_memdie", "alloc_oom", "fraction:0.25"]
    main = lines[3 : lines.index("")]  # the estimates; the paired differences follow a blank line
    first_column = {ln.split()[0] for ln in main}
    assert set(PROPORTIONS) | set(NUMBERS) <= first_column
    paired = lines[lines.index("") + 1 :]
    assert paired[0].startswith("paired differences")
    for a, b in (("tif_memdie", "alloc_oom"), ("tif_memdie", "fraction:0.25"), ("alloc_oom", "fraction:0.25")):
        assert {ln.split()[3] for ln in paired[3:] if ln.startswith(f"{a} - {b} ")} == set(PROPORTIONS)


def test_run_default_policies_come_from_the_scenario():
    result = run("-n", str(N))
    _ok(result)
    assert _stdout(result).splitlines()[1].split() == ["outcome", "tif_memdie", "alloc_oom"]


def test_run_json_shape():
    result = run("-n", str(N), "--seed", "7", "--json", "-p", "alloc_oom", "-p", "v6")
    _ok(result)
    doc = json.loads(_stdout(result))  # exactly one JSON object, nothing else on stdout
    assert {"seed", "episodes", "scenario", "policies"} <= set(doc)
    assert doc["seed"] == 7 and doc["episodes"] == N
    assert doc["scenario"] == json.loads(json.dumps(load_scenario(None).to_dict()))
    assert list(doc["policies"]) == ["alloc_oom", "v6"]
    for pol, outcomes in doc["policies"].items():
        for name in PROPORTIONS:
            e = outcomes[name]
            assert {"count", "n", "p", "ci_low", "ci_high"} <= set(e), (pol, name)
            assert e["n"] == N and 0 <= e["count"] <= N
            assert e["p"] == e["count"] / N
            assert 0.0 <= e["ci_low"] <= e["p"] <= e["ci_high"] <= 1.0
        for name in NUMBERS:
            e = outcomes[name]
            assert {"mean", "ci_low", "ci_high", "quantiles"} <= set(e), (pol, name)
            assert e["ci_low"] <= e["mean"] <= e["ci_high"]
            q = e["quantiles"]
            assert set(q) == {"0.5", "0.9", "0.99"}
            assert q["0.5"] <= q["0.9"] <= q["0.99"]


def test_json_options_are_reported():
    result = run("-n", "50", "--json", "-p", "alloc_oom", "--ci-method", "jeffreys", "--confidence", "0.9")
    _ok(result)
    doc = json.loads(_stdout(result))
    assert doc["ci_method"] == "jeffreys" and doc["confidence"] == 0.9


# --------------------------------------------------------------------------- --set
def _scenario_of(*args: str) -> dict:
    result = run("-n", "50", "-p", "alloc_oom", "--json", *args)
    _ok(result)
    return json.loads(_stdout(result))


def test_set_changes_the_resolved_scenario():
    doc = _scenario_of(
        "--set", 'threads={dist="geometric", mean=8}',
        "--set", "bystanders.atomic.rate_per_ms=0",
        "--set", "reaper_lock_p=0.5",
        "--set", "class_probs={kernel=0.5, nofs=0.5}",
        "--set", "reaper=false",
        "--set", "min_free_kbytes=8192",
    )  # fmt: skip
    sc = doc["scenario"]
    assert sc["threads"] == {"dist": "geometric", "mean": 8.0}
    assert sc["bystanders"]["atomic"]["rate_per_ms"] == 0.0
    assert sc["bystanders"]["kernel"]["rate_per_ms"] == 2.0  # the other streams keep their defaults
    assert sc["reaper_lock_p"] == 0.5
    assert sc["class_probs"] == {"kernel": 0.5, "nofs": 0.5}
    assert sc["reaper"] is False
    assert sc["min_free_kbytes"] == 8192
    # a switched-off bystander stream has no per-class outcome
    outcomes = doc["policies"]["alloc_oom"]
    assert "bystander_failures.atomic" not in outcomes and "bystander_failures.kernel" in outcomes


def test_set_bare_numbers_and_words():
    sc = _scenario_of("--set", "wake_us=300", "--set", "threads=64", "--set", "policies=alloc_oom")["scenario"]
    assert sc["wake_us"] == {"dist": "exponential", "mean": 300.0}  # bare number: the exponential's mean
    assert sc["threads"] == {"dist": "fixed", "value": 64}  # bare number: the fixed value
    assert sc["policies"] == ["alloc_oom"]


def test_set_overrides_a_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("threads = 16\nvictims = 2\n")
    sc = _scenario_of(str(f), "--set", "threads=4")["scenario"]
    assert sc["threads"] == {"dist": "fixed", "value": 4} and sc["victims"] == 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_each_config_runs(path):
    n = "60" if "1000-threads" in path.name else "200"  # 1000 threads per episode: slower
    result = run(str(path), "-n", n, "--json")
    _ok(result)
    doc = json.loads(_stdout(result))
    assert doc["scenario"] == json.loads(json.dumps(load_scenario(path).to_dict()))
    assert list(doc["policies"]) == load_scenario(path)["policies"]


# --------------------------------------------------------------------------- bad input
# id -> (file content or None, extra args, what the error line must name). A file
# is written to tmp_path and passed as the scenario; "{f}" in a name is its path.
BAD: dict[str, tuple[str | bytes | None, list[str], list[str]]] = {
    "unknown-key": ("bogus_key = 1\n", [], ["bogus_key"]),
    "unknown-key-in-dist": ("wake_us = {dist = 'exponential', mean = 1, scale = 2}\n", [], ["wake_us", "scale"]),
    "wrong-type-str": ('threads = "many"\n', [], ["threads"]),
    "wrong-type-bool": ("reaper = 1\n", [], ["reaper"]),
    "wrong-type-int": ("victims = 1.5\n", [], ["victims"]),
    "wrong-type-float": ("anon_fraction = true\n", [], ["anon_fraction"]),
    "reclaim-rounds-17": ("reclaim_rounds = 17\n", [], ["reclaim_rounds"]),
    "reaper-lock-p-1.5": (None, ["--set", "reaper_lock_p=1.5"], ["reaper_lock_p"]),
    "memory-gib-negative": (None, ["--set", "memory_gib=-1"], ["memory_gib"]),
    "nan": (None, ["--set", "f0_frac=nan"], ["f0_frac"]),
    "unknown-policy": (None, ["--policy", "nope"], ["nope"]),
    "unknown-policy-in-file": ('policies = ["nope"]\n', [], ["policies", "nope"]),
    "policy-not-a-string": ("policies = [1]\n", [], ["policies"]),
    "fraction-1.5": (None, ["--policy", "fraction:1.5"], ["fraction:1.5"]),
    "fraction-not-a-number": (None, ["--policy", "fraction:abc"], ["fraction:abc"]),
    "unknown-distribution": (None, ["--set", 'threads={dist="zipf", mean=3}'], ["threads", "zipf"]),
    "dist-not-a-string": ('threads = {dist = ["a"], mean = 3}\n', [], ["threads"]),
    "dist-missing-field": (None, ["--set", 'threads={dist="uniform", low=2}'], ["threads", "high"]),
    "dist-extra-field": (None, ["--set", 'threads={dist="geometric", mean=3, sigma=1}'], ["threads", "sigma"]),
    "dist-without-dist": ("threads = {mean = 3}\n", [], ["threads"]),
    "probs-not-summing-to-1": (None, ["--set", "order_probs=[0.5, 0.4]"], ["order_probs"]),
    "class-probs-not-summing-to-1": ("class_probs = {kernel = 0.5}\n", [], ["class_probs"]),
    "unknown-class-in-class-probs": (None, ["--set", "class_probs={foo=1.0}"], ["class_probs", "foo"]),
    "unknown-class-in-bystanders-file": ("[bystanders.foo]\nrate_per_ms = 1\n", [], ["bystanders.foo"]),
    "unknown-class-in-bystanders-set": (None, ["--set", "bystanders.foo.rate_per_ms=1"], ["bystanders.foo"]),
    "unknown-bystander-key": (None, ["--set", "bystanders.atomic.speed=1"], ["bystanders.atomic.speed"]),
    "bystanders-not-a-table-then-set": (
        "bystanders = 5\n", ["--set", "bystanders.atomic.rate_per_ms=0"], ["bystanders"],
    ),  # fmt: skip
    "bystander-class-not-a-table-then-set": (
        "bystanders = {atomic = 5}\n", ["--set", "bystanders.atomic.rate_per_ms=0"], ["bystanders.atomic"],
    ),  # fmt: skip
    "malformed-toml": ("threads = \n", [], ["{f}"]),
    "binary-file": (b"\xff\xfe\x00\x81 not utf-8", [], ["{f}"]),
    "set-without-equals": (None, ["--set", "threads"], ["threads"]),
    "set-non-toml-value": (None, ["--set", "threads=[1,"], ["threads"]),
    "set-empty-value": (None, ["--set", "threads="], ["threads"]),
    "set-dotted-unknown": (None, ["--set", "foo.bar=1"], ["foo.bar"]),
    "episodes-0": (None, ["--episodes", "0"], ["episodes"]),
    "seed-negative": (None, ["--seed", "-1"], ["seed"]),
    "seed-too-big": (None, ["--seed", str(2**64)], ["seed"]),
    "chunk-size-0": (None, ["--chunk-size", "0"], ["chunk_size"]),
    "ci-method-bogus": (None, ["--ci-method", "bogus"], ["bogus"]),
    "confidence-1.5": (None, ["--confidence", "1.5"], ["confidence"]),
    "duplicate-policy": (None, ["--policy", "alloc_oom", "--policy", "alloc_oom"], ["alloc_oom"]),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_gives_one_error_line(case, tmp_path):
    content, extra, names = BAD[case]
    args: list[str] = []
    f = tmp_path / "bad.toml"
    if content is not None:
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content)
        args.append(str(f))
    result = run(*args, "-n", "20", *extra)
    assert_one_error(result, *[n.replace("{f}", str(f)) for n in names])


def test_missing_file(tmp_path):
    f = tmp_path / "nowhere.toml"
    assert_one_error(run(str(f), "-n", "20"), str(f))


def test_directory_as_file(tmp_path):
    d = tmp_path / "dir.toml"
    d.mkdir()
    assert_one_error(run(str(d), "-n", "20"), str(d))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    f = tmp_path / "secret.toml"
    f.write_text("threads = 2\n")
    f.chmod(0)
    try:
        assert_one_error(run(str(f), "-n", "20"), str(f))
    finally:
        f.chmod(0o600)


# --------------------------------------------------------------------------- determinism
def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("depletion")
    return [str(script)] if script.exists() else [sys.executable, "-m", "depletion.cli"]


def test_same_json_for_any_thread_count_and_chunk_size():
    """MODEL.md section 10: same seed, same numbers, whatever the threads or the chunking."""
    base = [*_cli_command(), "run", "-n", "3000", "--seed", "5", "--json"]
    runs = {
        "1 thread": (base, "1"),
        "2 threads": (base, "2"),
        "2 threads, chunks of 700": ([*base, "--chunk-size", "700"], "2"),
    }
    procs = {}
    for name, (cmd, nthreads) in runs.items():  # run side by side: each pays numba's start-up
        env = {**os.environ, "NUMBA_NUM_THREADS": nthreads}
        procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"{name}: {err}"
        outs[name] = out
    doc = json.loads(outs["1 thread"])
    assert doc["episodes"] == 3000 and doc["seed"] == 5
    for name, out in outs.items():
        assert out == outs["1 thread"], f"{name} differs from 1 thread"


def test_chunk_size_does_not_change_the_numbers_in_process():
    """More episodes than one moment block (4096), so the block-wise merge is exercised too."""
    args = ["-n", "5000", "--seed", "11", "--json", "-p", "alloc_oom"]
    a = run(*args)
    b = run(*args, "--chunk-size", "777")
    _ok(a)
    _ok(b)
    assert _stdout(a) == _stdout(b)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--episodes", "abc"],
        ["run", "--no-such-option"],
        ["frobnicate"],
        ["run", "--set", "threads=x", "-n", "10"],
    ],
)
def test_console_script_usage_errors_are_one_line(args):
    """The installed entry point turns Click usage errors into one `error:` line and exit code 2."""
    r = subprocess.run([*_cli_command(), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_console_script_without_arguments_prints_help():
    r = subprocess.run(_cli_command(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert "run" in r.stdout and "bench" in r.stdout


def test_bench_reports_rates_and_ratios():
    r = runner.invoke(app, ["bench", "-n", "3000", "--reference-episodes", "3", "--no-startup", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    for p in ("tif_memdie", "alloc_oom"):
        m = rep["policies"][p]
        assert m["episodes_per_s_1_thread"] > 0 and m["speedup"] > 0 and m["events_per_episode"] > 10
    assert rep["reference"]["speed_ratio_1_thread"] > 1  # the kernels beat plain Python
    assert "cold_start_s" not in rep


def test_import_is_light():
    """`import depletion` and the CLI module load neither numba, scipy nor matplotlib."""
    code = (
        "import sys, depletion, depletion.cli; "
        "print(sorted(m for m in ('numba', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
