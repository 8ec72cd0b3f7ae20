"""Figures: what each plot kind draws, the CLI's files and metadata, bad input, and an image baseline.

Most checks use synthetic results files written with
:func:`depletion.results.write_results`, so every plotted number is known
exactly; a small real sweep (200 episodes of the cut-down tetsuo scenario)
and a small simulation with ``keep_episodes=True`` check the kinds that need
real quantiles and per-episode data. The image comparison draws a fixed
synthetic curve at 50 dpi and compares it with ``tests/baseline/curve.png``
(regenerate it with ``DEPLETION_UPDATE_BASELINE=1 pytest tests/test_plot.py``
after an intended change of the figure).
"""

from __future__ import annotations

import io
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_one_error, cli_text  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from depletion import plot as P  # noqa: E402
from depletion.cli import app  # noqa: E402
from depletion.config import load_scenario  # noqa: E402
from depletion.results import write_results  # noqa: E402
from depletion.stats import proportion_interval  # noqa: E402
from depletion.sweeps import load_results, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "tests" / "baseline" / "curve.png"
TETSUO = ROOT / "configs" / "tetsuo-1000-threads.toml"
SMALL = {"threads": 32, "memory_gib": 0.25, "exit_allocs": 16}
runner = CliRunner()

THREADS = [2**i for i in range(11)]  # 1..1024: three decades
POLICIES = ["tif_memdie", "alloc_oom", "v6"]
N = 1000


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ synthetic results
def _count(pol: int, i: int, outcome: str) -> int:
    """Known counts out of N: tif_memdie rises over three decades, v6 never fails."""
    if outcome == "exhausted":
        return [min(N, round(2**i / 2)), max(0, 3 * i - 15), 0][pol]
    return [0, min(N, 40 * i), min(N, 60 * i)][pol]


def _prop_row(point: int, vals: dict, pol: str, outcome: str, count: int, n: int = N) -> dict:
    lo, hi = proportion_interval(count, n, 0.95, "wilson")
    return {"point": point, **vals, "policy": pol, "outcome": outcome, "kind": "proportion",
            "estimate": count / n, "ci_low": lo, "ci_high": hi, "count": count, "n": n, "stop": "fixed"}  # fmt: skip


def _mean_row(point: int, vals: dict, pol: str, outcome: str, base: float) -> dict:
    r = {"point": point, **vals, "policy": pol, "outcome": outcome, "kind": "mean", "estimate": base,
         "ci_low": base * 0.95, "ci_high": base * 1.05, "n": N, "sd": base / 3, "stop": "fixed"}  # fmt: skip
    for q, f in ((50, 1.0), (90, 1.5), (99, 2.0)):
        r[f"q{q}"], r[f"q{q}_low"], r[f"q{q}_high"] = base * f, base * f * 0.9, base * f * 1.1
    if pol == "v6":
        r["q99_high"] = None  # an order statistic the episodes cannot bound above
    return r


def _pair_row(point: int, vals: dict, a: str, b: str, outcome: str, d: float) -> dict:
    return {"point": point, **vals, "policy": a, "vs": b, "outcome": outcome, "kind": "paired_diff",
            "estimate": d, "ci_low": d - 0.02, "ci_high": d + 0.03, "n": N, "n11": 0, "n10": 5, "n01": 3,
            "n00": N - 8, "mcnemar_p": 0.5, "stop": "fixed"}  # fmt: skip


def write_synthetic(path: Path, axes: dict[str, list], policies: list[str] = POLICIES) -> Path:
    """A results file with known rows: proportions, means with quantiles and paired differences."""
    names = list(axes)
    points = [list(p) for p in itertools.product(*axes.values())] if names else [[]]
    rows = []
    for pt, vals in enumerate(points):
        v = dict(zip(names, vals))
        i = pt % len(THREADS)
        for j, pol in enumerate(policies):
            for outcome in ("exhausted", "victim_failed"):
                rows.append(_prop_row(pt, v, pol, outcome, _count(j % 3, i, outcome)))
            rows.append(_mean_row(pt, v, pol, "min_free_frac", 0.2 + 0.1 * j))
            rows.append(_mean_row(pt, v, pol, "resolve_us", 1000.0 * (j + 1) * (i + 1)))
        for (ja, a), (jb, b) in itertools.combinations(enumerate(policies), 2):
            d = (_count(ja % 3, i, "exhausted") - _count(jb % 3, i, "exhausted")) / N
            rows.append(_pair_row(pt, v, a, b, "exhausted", d))
    meta = {
        "scenario": load_scenario(None, {"memory_gib": 4, "threads": 64}).to_dict(),
        "scenario_name": "synthetic", "scenario_source": None,
        "grid": [{"name": n, "values": axes[n]} for n in names], "points": points, "policies": policies,
        "seed": 7, "episodes": N, "chunk_size": N, "confidence": 0.95, "ci_method": "wilson",
        "target_halfwidth": None, "target_relative": None, "max_episodes": None, "outcomes": None,
        "versions": {}, "command": ["depletion", "sweep", "synthetic.toml"], "complete": True,
    }  # fmt: skip
    write_results(path, meta, names, rows)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("plot")
    return {
        "threads": write_synthetic(d / "threads.csv", {"threads": THREADS}),
        "two": write_synthetic(d / "two.csv", {"memory_gib": [4, 16], "threads": THREADS}),
        "heat": write_synthetic(d / "heat.csv", {"reaper_lock_p": [0.0, 0.5, 1.0], "threads": THREADS[:6]}),
        "linear": write_synthetic(d / "linear.csv", {"threads": [6, 7, 8]}),
        "fraction": write_synthetic(
            d / "fraction.csv", {}, ["tif_memdie", "fraction:0", "fraction:0.5", "fraction:1"]
        ),  # fmt: skip
    }


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """A small real sweep: 200 episodes at 4 thread counts, two policies."""
    out = tmp_path_factory.mktemp("real") / "real.csv"
    run_sweep(load_scenario(TETSUO, SMALL), ["threads=8,16,32,64"], policies=["tif_memdie", "alloc_oom"],
              episodes=200, seed=1, out=out, command=["depletion", "sweep", "tetsuo (small)"])  # fmt: skip
    return out


def _rows(res, policy: str, outcome: str, kind: str = "proportion", **where) -> list[dict]:
    return [r for r in res.rows if r["policy"] == policy and r["outcome"] == outcome and r["kind"] == kind
            and all(r[k] == v for k, v in where.items())]  # fmt: skip


# ------------------------------------------------------------------ import and style
def test_import_does_not_import_matplotlib_or_change_rcparams():
    lazy = "import sys, depletion.plot, depletion.display; print('matplotlib' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stdout + r.stderr
    # rcParams read without resolving the backend (dict.items bypasses RcParams.__getitem__)
    same = (
        "import matplotlib; snap = lambda: dict(dict.items(matplotlib.rcParams)); before = snap(); "
        "import depletion.plot; print(snap() == before)"
    )
    r = subprocess.run([sys.executable, "-c", same], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "True", r.stdout + r.stderr


def test_plotting_restores_rcparams(files, tmp_path):
    before = dict(matplotlib.rcParams)
    a = P.plot_curve(load_results(files["threads"]))
    P.save_figure(a, tmp_path / "x.pdf", "pdf,png")
    assert dict(matplotlib.rcParams) == before


def test_style_file_is_package_data_with_okabe_ito_and_type42():
    path = P.style_path()
    assert path.is_file() and path.suffix == ".mplstyle"
    with P.style():
        assert matplotlib.rcParams["pdf.fonttype"] == 42 and matplotlib.rcParams["ps.fonttype"] == 42
        assert matplotlib.rcParams["text.usetex"] is False
        assert matplotlib.rcParams["svg.hashsalt"]
        styles = [P.series_style(i) for i in range(7)]
    okabe_ito = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}
    assert {s["color"].upper() for s in styles} == okabe_ito
    # greyscale: every series also differs in line style and marker
    assert len({str(s["linestyle"]) for s in styles}) == 7 and len({s["marker"] for s in styles}) == 7
    assert P.UPPER_BOUND_MARKER not in {s["marker"] for s in styles}


# ------------------------------------------------------------------ curve
def test_curve_lines_bands_bounds_and_log_axes(files):
    res = load_results(files["threads"])
    a = P.plot_curve(res, "exhausted")
    ax = a.axes[0]
    assert list(a.lines) == POLICIES and list(a.bands) == POLICIES
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # 1..1024 threads; p over three decades
    assert ax.get_xlabel() == "threads per victim" and ax.get_ylabel() == "P(reserves exhausted)"
    title = ax.get_title(loc="left")
    assert title == "synthetic: 4 GiB, 1,000 episodes, seed 7"  # threads is swept: not in the note
    for pol in POLICIES:
        rows = _rows(res, pol, "exhausted")
        est = np.array([r["estimate"] for r in rows])
        x, y = a.lines[pol].get_data()
        assert list(x) == THREADS
        # the plotted estimates are the file's; zero counts are not on the log-scale line...
        np.testing.assert_array_equal(np.where(est > 0, est, np.nan), y)
        # ...but drawn as downward carets at the interval's upper end
        zero = [r for r in rows if r["count"] == 0]
        if zero:
            bx, by = a.bounds[pol].get_data()
            assert list(bx) == [r["threads"] for r in zero]
            np.testing.assert_allclose(by, [r["ci_high"] for r in zero])
            assert a.bounds[pol].get_marker() == P.UPPER_BOUND_MARKER
        else:
            assert pol not in a.bounds
        # the band spans the intervals of the nonzero counts (on a log axis the carets stand for the others)
        paths = a.bands[pol].get_paths()
        if all(r["count"] == 0 for r in rows):
            assert not paths or all(len(p.vertices) == 0 for p in paths)
        else:
            top = max(v[1] for p in paths for v in p.vertices)
            assert np.isclose(top, max(r["ci_high"] for r in rows if r["count"] > 0))
    assert set(a.bounds) == {"tif_memdie", "alloc_oom", "v6"}  # each has a zero count somewhere
    assert "none seen: upper bound" in [t.get_text() for t in a.legend.get_texts()]


def test_curve_linear_scales_keep_zero_on_the_line(files):
    res = load_results(files["linear"])
    a = P.plot_curve(res, "victim_failed", policies=["alloc_oom", "tif_memdie"])
    ax = a.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"  # 6..8: no decades
    assert list(a.lines) == ["tif_memdie", "alloc_oom"]  # the file's order: styles stay per policy
    y = a.lines["tif_memdie"].get_ydata()
    assert list(y) == [0.0, 0.0, 0.0] and "tif_memdie" in a.bounds
    assert a.lines["tif_memdie"].get_color().upper() == "#0072B2"
    assert a.lines["alloc_oom"].get_color().upper() == "#D55E00"
    # forced scales
    b = P.plot_curve(res, "victim_failed", logx=True, logy=False)
    assert b.axes[0].get_xscale() == "log" and b.axes[0].get_yscale() == "linear"


def test_curve_other_axis_gives_panels_or_is_fixed_by_where(files):
    res = load_results(files["two"])
    a = P.plot_curve(res, "exhausted", width="two")
    assert len(a.axes) == 2 and a.figure.get_figwidth() == pytest.approx(7.16)
    assert [ax.get_title() for ax in a.axes] == ["memory_gib = 4 GiB", "memory_gib = 16 GiB"]
    assert len(a.lines) == 6 and "memory_gib = 16 GiB / alloc_oom" in a.lines
    assert a.figure.get_suptitle().startswith("synthetic:")
    b = P.plot_curve(res, "exhausted", where=["memory_gib=16"])
    assert len(b.axes) == 1 and list(b.lines) == POLICIES
    assert "memory_gib = 16 GiB" in b.axes[0].get_title(loc="left")
    assert b.figure.get_figwidth() == pytest.approx(3.5)
    rows = _rows(res, "alloc_oom", "exhausted", memory_gib=16)
    est = np.array([r["estimate"] for r in rows])
    np.testing.assert_array_equal(b.lines["alloc_oom"].get_ydata(), np.where(est > 0, est, np.nan))
    # several outcomes: one panel each, one shared y axis that holds every panel's data
    d = P.plot_curve(load_results(files["threads"]), ["exhausted", "victim_failed"], width="two")
    assert [ax.get_title() for ax in d.axes] == ["exhausted", "victim failed"]
    top = max(r["ci_high"] for r in load_results(files["threads"]).rows if r["kind"] == "proportion")
    assert all(ax.get_yscale() == "log" and ax.get_ylim()[1] >= top for ax in d.axes)
    # x = memory, threads fixed
    c = P.plot_curve(res, "exhausted", x="memory_gib", where={"threads": 1024})
    assert list(c.lines["tif_memdie"].get_xdata()) == [4, 16]


def test_curve_fraction_policies_on_x_with_references(files):
    res = load_results(files["fraction"])
    a = P.plot_curve(res, ["exhausted", "victim_failed"])
    ax = a.axes[0]
    assert ax.get_xlabel().startswith("reserve fraction X")
    assert list(a.lines) == ["exhausted", "victim failed"]
    assert list(a.lines["exhausted"].get_xdata()) == [0.0, 0.5, 1.0]
    assert set(a.references) == {"tif_memdie: exhausted", "tif_memdie: victim failed"}
    ref = _rows(res, "tif_memdie", "victim_failed")[0]
    assert a.references["tif_memdie: victim failed"].get_ydata()[0] == pytest.approx(ref["estimate"])


def test_curve_numeric_outcome_mean_with_units(files):
    a = P.plot_curve(load_results(files["threads"]), "resolve_us")
    assert a.axes[0].get_ylabel() == "time until the victims' memory is free (µs) (mean)"
    assert a.axes[0].get_yscale() == "linear"  # 1,000 .. 33,000 us: less than two decades
    assert not a.bounds


# ------------------------------------------------------------------ heatmap
def test_heatmap_one_panel_per_policy_with_the_estimates(files):
    res = load_results(files["heat"])
    a = P.plot_heatmap(res, "victim_failed", policies=["alloc_oom", "v6"])
    assert list(a.images) == ["alloc_oom", "v6"] and len(a.axes) == 2
    ax = a.axes[0]
    assert ax.get_xlabel() == "threads per victim" and ax.get_ylabel() == "P(reaper takes mmap_lock)"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(t) for t in THREADS[:6]]
    assert a.colorbar is not None and a.colorbar.ax.get_ylabel() == "P(a victim allocation failed)"
    for pol in ("alloc_oom", "v6"):
        grid = np.array(a.images[pol].get_array()).reshape(3, 6)
        for r in _rows(res, pol, "victim_failed"):
            i = [0.0, 0.5, 1.0].index(r["reaper_lock_p"])
            j = THREADS.index(r["threads"])
            assert grid[i, j] == pytest.approx(r["estimate"])
    texts = [t.get_text() for t in a.texts]
    assert len(texts) == 2 * 18 and any(t.startswith("<") for t in texts)  # zero counts: "<upper bound"
    b = P.plot_heatmap(res, ["exhausted", "victim_failed"], policies=["tif_memdie"])
    assert list(b.images) == ["tif_memdie: exhausted", "tif_memdie: victim failed"]


# ------------------------------------------------------------------ diff
def test_diff_is_the_paired_difference_with_its_interval(files):
    res = load_results(files["threads"])
    a = P.plot_diff(res, "alloc_oom", "tif_memdie")  # stored as tif_memdie - alloc_oom: flipped
    ax = a.axes[0]
    rows = [r for r in res.rows if r["kind"] == "paired_diff" and (r["policy"], r["vs"]) == ("tif_memdie", "alloc_oom")]
    np.testing.assert_allclose(a.lines["alloc_oom - tif_memdie"].get_ydata(), [-r["estimate"] for r in rows])
    verts = a.bands["alloc_oom - tif_memdie"].get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(max(-r["ci_low"] for r in rows))
    assert a.references["zero"].get_ydata()[0] == 0
    assert ax.get_xscale() == "log" and "alloc_oom − tif_memdie" in ax.get_ylabel()
    b = P.plot_diff(load_results(files["two"]), "tif_memdie", "v6")
    assert list(b.lines) == ["memory_gib = 4 GiB", "memory_gib = 16 GiB"]


def test_diff_on_a_real_sweep(real):
    res = load_results(real)
    a = P.plot_diff(res, "alloc_oom", "tif_memdie", "victim_failed")
    est = [r["estimate"] for r in res.rows if r["kind"] == "paired_diff" and r["outcome"] == "victim_failed"]
    sign = 1 if res.meta["policies"][0] == "alloc_oom" else -1
    np.testing.assert_allclose(a.lines["alloc_oom - tif_memdie"].get_ydata(), [sign * e for e in est])


# ------------------------------------------------------------------ cdf
def test_cdf_from_quantile_rows(files):
    res = load_results(files["threads"])
    a = P.plot_cdf(res, where={"threads": 4})
    assert len(a.axes) == 2
    assert [ax.get_xlabel() for ax in a.axes] == [P.outcome_label("min_free_frac"), P.outcome_label("resolve_us")]
    for pol in POLICIES:
        r = _rows(res, pol, "resolve_us", "mean", threads=4)[0]
        x, y = a.lines[f"time to free / {pol}"].get_data()
        assert list(x) == [r["q50"], r["q90"], r["q99"]] and list(y) == [0.5, 0.9, 0.99]
        bars = a.errorbars[f"time to free / {pol}"]
        segs = bars.lines[2][0].get_segments()
        assert [s[0][0] for s in segs] == pytest.approx([r["q50_low"], r["q90_low"], r["q99_low"]])
    assert a.axes[0].get_yscale() == "logit"
    assert set(a.bounds) == {"min free / W / v6", "time to free / v6"}  # v6's q99 has no upper end
    assert "threads = 4" in a.figure.get_suptitle()
    b = P.plot_cdf(res, "min_free_frac")  # free axes take their last value
    assert "threads = 1024" in b.axes[0].get_title(loc="left")


def test_cdf_episodes_is_the_full_empirical_cdf():
    import depletion

    sc = load_scenario(TETSUO, SMALL)
    res = depletion.simulate(sc, episodes=200, seed=1, policies=["tif_memdie", "alloc_oom"], keep_episodes=True)
    a = P.plot_cdf_episodes(res, "min_free_frac")
    d = res.episode_data["alloc_oom"]
    x, y = a.lines["alloc_oom"].get_data()
    frac = np.sort(d["min_free"] / d["W"])
    assert np.allclose(np.unique(x[np.isfinite(x)]), np.unique(frac))
    assert y.max() == pytest.approx(1.0) and y.min() == pytest.approx(0.0)
    assert set(a.bands) == {"tif_memdie", "alloc_oom"}
    assert a.axes[0].get_xlabel() == "lowest free memory / W (min watermark)"
    assert "200 episodes" in a.axes[0].get_title(loc="left")
    b = P.plot_cdf_episodes(res, "resolve_us", band=False)
    assert not b.bands and b.axes[0].get_xlabel().endswith("(µs)")
    without = depletion.simulate(sc, episodes=50, seed=1, policies=["alloc_oom"])
    with pytest.raises(depletion.DepletionError, match="keep_episodes=True"):
        P.plot_cdf_episodes(without)


# ------------------------------------------------------------------ dispatch and errors
def test_choose_kind(files):
    assert P.choose_kind(load_results(files["threads"])) == "curve"
    assert P.choose_kind(load_results(files["two"])) == "curve"  # memory has 2 values: panels
    assert P.choose_kind(load_results(files["heat"])) == "curve"  # 3 x 6
    assert P.choose_kind(load_results(files["fraction"])) == "curve"


def test_api_errors_name_the_option_and_allowed_values(files):
    from depletion.errors import DepletionError

    res = load_results(files["two"])
    with pytest.raises(DepletionError, match=r"--where: 'nope' is not a swept parameter.*memory_gib, threads"):
        P.plot_curve(res, where=["nope=3"])
    with pytest.raises(DepletionError, match=r"--where memory_gib: 8 is not in the grid; allowed: 4, 16"):
        P.plot_curve(res, where=["memory_gib=8"])
    with pytest.raises(DepletionError, match=r"--outcome: 'bogus' is not in the results; allowed: exhausted"):
        P.plot_curve(res, "bogus")
    with pytest.raises(DepletionError, match=r"--policy: 'x' is not in the results"):
        P.plot_curve(res, policies=["x"])
    with pytest.raises(DepletionError, match=r"--kind: unknown 'pie'; allowed: curve, heatmap, diff, cdf"):
        P.plot(res, "pie")
    with pytest.raises(DepletionError, match="--kind heatmap: needs two swept parameters"):
        P.plot_heatmap(load_results(files["threads"]))


# ------------------------------------------------------------------ files, metadata, CLI
def test_cli_writes_pdf_and_png_with_metadata(real, tmp_path):
    from PIL import Image

    out = tmp_path / "fig" / "victims.pdf"
    r = runner.invoke(app, ["plot", str(real), "--outcome", "victim_failed", "--out", str(out), "--format",
                            "pdf,png"])  # fmt: skip
    assert r.exit_code == 0, cli_text(r)
    pdf, png = out, out.with_suffix(".png")
    assert r.stdout.split() == [str(pdf), str(png)]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    cmd = f"depletion plot {real} --kind curve --outcome victim_failed --out {out} --format pdf,png"
    assert f"/Subject ({cmd})".encode() in data
    assert f"/Keywords (results={real}; sweep=depletion sweep tetsuo \\(small\\))".encode() in data
    assert b"/Creator (depletion " in data and b"/CreationDate" not in data
    assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType (Type 42) fonts, no Type 3
    im = Image.open(png)
    assert im.info["Description"] == cmd and im.info["Source"] == str(real)
    assert "depletion sweep tetsuo (small)" in im.info["Comment"]
    assert im.info["dpi"][0] == pytest.approx(300, abs=0.1)
    assert im.size[0] == pytest.approx(3.5 * 300, rel=0.15)  # one column wide (tight bbox)


def test_cli_default_output_kinds_and_width(real, files, tmp_path):
    r = runner.invoke(app, ["plot", str(real), "--kind", "cdf", "--where", "threads=64", "--width", "two"])
    assert r.exit_code == 0, cli_text(r)
    assert r.stdout.split() == [str(real.with_name("real-cdf.pdf")), str(real.with_name("real-cdf.png"))]
    r = runner.invoke(app, ["plot", str(files["heat"]), "--kind", "heatmap", "--out", str(tmp_path / "h.png")])
    assert r.exit_code == 0 and r.stdout.split() == [str(tmp_path / "h.png")], cli_text(r)
    r = runner.invoke(app, ["plot", str(real), "--kind", "diff", "--out", str(tmp_path / "d.svg")])  # 2 policies
    assert r.exit_code == 0 and (tmp_path / "d.svg").read_text().startswith("<?xml"), cli_text(r)


@pytest.mark.parametrize(
    "args, names",
    [
        (["--kind", "pie"], ["--kind", "'pie'", "curve, heatmap, diff, cdf"]),
        (["--kind", "heatmap"], ["--kind heatmap", "two swept parameters"]),
        (["--kind", "diff", "--a", "alloc_oom", "--b", "nope"], ["--b", "'nope'", "alloc_oom"]),
        (["--kind", "diff", "--a", "v6", "--b", "alloc_oom"], ["--a", "'v6'", "tif_memdie, alloc_oom"]),
        (["--where", "memory_gib=4"], ["--where", "'memory_gib'", "threads"]),
        (["--where", "threads=3"], ["--where threads", "8, 16, 32, 64"]),
        (["--outcome", "nope"], ["--outcome", "'nope'"]),
        (["--width", "three"], ["--width", "one, two"]),
        (["--format", "jpg"], ["--format", "'jpg'", "pdf, png"]),
        (["--x", "memory_gib"], ["--x", "threads"]),
        (["--a", "alloc_oom"], ["--a/--b", "--kind diff"]),
    ],
)
def test_cli_bad_input_is_one_error_line(real, tmp_path, args, names):
    r = runner.invoke(app, ["plot", str(real), "--out", str(tmp_path / "x.pdf"), *args])
    assert_one_error(r, *names)
    assert not list(tmp_path.iterdir())


def test_cli_missing_and_corrupt_results_files(tmp_path):
    assert_one_error(runner.invoke(app, ["plot", str(tmp_path / "none.csv")]), "none.csv", "no such results file")
    bad = tmp_path / "bad.csv"
    bad.write_text("hello\n")
    assert_one_error(runner.invoke(app, ["plot", str(bad)]), "bad.csv", "not a depletion results file")


# ------------------------------------------------------------------ determinism and the image baseline
def _baseline_figure(files) -> plt.Figure:
    return P.plot_curve(load_results(files["threads"]), "exhausted").figure


def test_saved_files_are_deterministic(files, tmp_path):
    for fmt in ("pdf", "svg", "png"):
        a = P.save_figure(_baseline_figure(files), tmp_path / "a", fmt, dpi=50)[0]
        b = P.save_figure(_baseline_figure(files), tmp_path / "b", fmt, dpi=50)[0]
        assert a.read_bytes() == b.read_bytes(), fmt


def test_curve_matches_the_baseline_image(files, tmp_path):
    from matplotlib.testing.compare import compare_images

    got = P.save_figure(_baseline_figure(files), tmp_path / "curve.png", dpi=50)[0]
    if os.environ.get("DEPLETION_UPDATE_BASELINE"):
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        BASELINE.write_bytes(got.read_bytes())
    assert BASELINE.exists(), "no baseline: run DEPLETION_UPDATE_BASELINE=1 pytest tests/test_plot.py"
    err = compare_images(str(BASELINE), str(got), tol=2.0)
    assert err is None, err


# ------------------------------------------------------------------ display helpers
def test_notebook_progress_accepts_simulate_and_sweep_calls():
    from depletion.display import ProgressCallback

    buf = io.StringIO()
    cb = ProgressCallback("run", use_tqdm=False, stream=buf)
    cb(0, 400)
    cb(400, 400)
    cb({"points_done": 0, "points_total": 2, "point_fraction": 0.5, "episodes": 100, "elapsed_s": 0.0})
    cb({"points_done": 2, "points_total": 2, "point_fraction": 0.0, "episodes": 400, "elapsed_s": 1.0})
    text = buf.getvalue()
    assert "run: 400/400 episodes (100%)" in text and "2.0/2 points (100%)" in text and "400 episodes/s" in text
    bar = ProgressCallback("t")  # tqdm's text bar outside Jupyter
    bar(10, 20)
    bar(20, 20)
    assert bar._bar is None  # closed at the end


def test_html_tables_have_intervals(real):
    import depletion
    from depletion.display import enable_html, result_html, sweep_html

    res = depletion.simulate(load_scenario(TETSUO, SMALL), episodes=100, seed=1, policies=["tif_memdie", "alloc_oom"])
    h = result_html(res)
    e = res.policies["alloc_oom"]["victim_failed"]
    assert "<table" in h and "<th>alloc_oom</th>" in h and f"({e['count']}/{e['n']})" in h
    assert "paired differences" in h and "McNemar" in h
    s = sweep_html(load_results(real))
    assert s.count("<table") == 5 and "<th>threads</th>" in s
    assert enable_html() is False  # not in IPython
    assert math.isfinite(e["ci_high"])
