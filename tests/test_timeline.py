"""Episode timelines: ``plot_timeline`` draws exactly the traced ``F(t)``, floors and events.

The traces themselves are checked in ``tests/test_trace.py``; here the
figure: the plotted data are the trace's arrays, the floors are the
policy's, the event markers are the trace's events, and the command line
(`depletion plot RESULTS --kind timeline --episode N`) traces the episodes of
the results file's own scenario, seed and point.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_one_error, cli_text  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from depletion import plot as P  # noqa: E402
from depletion.cli import app  # noqa: E402
from depletion.config import load_scenario  # noqa: E402
from depletion.sweeps import load_results, run_sweep  # noqa: E402
from depletion.trace import trace_episodes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TETSUO = ROOT / "configs" / "tetsuo-1000-threads.toml"
runner = CliRunner()


def small(**kw):
    return load_scenario(TETSUO, {"threads": 32, "memory_gib": 0.25, "exit_allocs": 16, **kw})


@pytest.fixture(scope="module")
def traces():
    return trace_episodes(small(), "alloc_oom", [1, 2], seed=3) + trace_episodes(small(), "tif_memdie", [1], seed=3)


def test_timeline_draws_the_trace(traces):
    import matplotlib.pyplot as plt

    art = P.plot_timeline(traces)
    assert art.kind == "timeline" and len(art.axes) == 3
    for tr, ax in zip(traces, art.axes):
        pre = f"{tr.policy}, episode {tr.episode} / "
        x, y = art.lines[pre + "F"].get_data()
        assert np.array_equal(y, tr.free_pages) and np.allclose(x, tr.t_us / 1000.0)
        assert ax.get_xlabel() == "" or "time since the kill (ms)" in ax.get_xlabel()
        assert ax.get_ylabel() == "free pages"
        for key in ("min", "atomic"):
            assert art.references[pre + key].get_ydata()[0] == tr.floors[key]
        if tr.floors["oom_victim"] != tr.floors["min"]:
            assert art.references[pre + "oom_victim"].get_ydata()[0] == tr.floors["oom_victim"]
        for kind, _, _ in P.TIMELINE_EVENTS:
            m = tr.mask(kind)
            if m.any():
                ex, ey = art.lines[pre + kind].get_data()
                assert np.array_equal(ey, tr.free_pages[m])
            else:
                assert pre + kind not in art.lines
    assert art.axes[-1].get_xlabel() == "time since the kill (ms)"
    # alloc_oom's victims stop at W - W/2; tif_memdie's at 0 (NO_WATERMARKS)
    assert traces[0].floors["oom_victim"] == traces[0].W - traces[0].W // 2
    assert traces[2].floors["oom_victim"] == 0
    plt.close(art.figure)


def test_timeline_on_given_axes_and_errors(traces):
    import matplotlib.pyplot as plt

    fig, ax = P.subplots(1, 1, width="one")
    art = P.plot_timeline(traces[0], ax=ax, time_unit="us")
    assert art.axes == [ax]
    x, _ = art.lines["F"].get_data()
    assert np.allclose(x, traces[0].t_us)
    with pytest.raises(Exception, match="ax: this figure has 2 panels"):
        P.plot_timeline(traces[:2], ax=ax)
    with pytest.raises(Exception, match="time_unit"):
        P.plot_timeline(traces[0], time_unit="h")
    plt.close("all")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("tl") / "r.csv"
    run_sweep(small(), ["threads=16,32"], policies=["tif_memdie", "alloc_oom"], episodes=200, seed=3, out=out)
    return out


def test_cli_timeline_traces_the_files_episodes(results, tmp_path):
    out = tmp_path / "tl.png"
    r = runner.invoke(app, ["plot", str(results), "--kind", "timeline", "-e", "1", "--where", "threads=32",
                            "-p", "alloc_oom", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, cli_text(r)
    assert out.exists() and out.stat().st_size > 10_000
    # the same episodes, traced through the API, are what the file's estimates counted
    sw = load_results(results)
    (tr,) = P.timeline_from_results(sw, [1], ["alloc_oom"], ["threads=32"])
    (ref,) = trace_episodes(small(threads=32), "alloc_oom", [1], seed=3)
    assert np.array_equal(tr.free_pages, ref.free_pages)


def test_cli_timeline_bad_input(results, tmp_path):
    o = ["--out", str(tmp_path / "x.png")]
    assert_one_error(runner.invoke(app, ["plot", str(results), "--kind", "timeline", "--where", "threads=32", *o]),
                     "--episode")  # fmt: skip
    assert_one_error(runner.invoke(app, ["plot", str(results), "--kind", "timeline", "-e", "1", *o]), "threads")
    assert_one_error(runner.invoke(app, ["plot", str(results), "--kind", "curve", "-e", "1", *o]), "--episode")
    assert_one_error(runner.invoke(app, ["plot", str(results), "--kind", "timeline", "-e", "-1", *o]), "--episode")
    assert_one_error(runner.invoke(app, ["plot", str(results), "--kind", "timeline", "-e", "1", "--where",
                                         "threads=32", "-o", "exhausted", *o]), "--outcome")  # fmt: skip
    assert not (tmp_path / "x.png").exists()
