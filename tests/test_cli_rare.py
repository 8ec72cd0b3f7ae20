"""``depletion rare``: the command line of the importance-sampling estimator.

The estimator itself is checked in ``tests/test_rare.py``; here: the tilt
comes from ``--tilt`` or the scenario's ``[tilt]`` table, no tilt is plain
sampling (the same count as ``depletion run``), and bad input exits 2.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from depletion import api
from depletion.cli import app

runner = CliRunner()
# a tiny box (W = 32 pages, 4 threads, heavier orders): P(exhausted) ~ 6e-4 under tif_memdie
SMALL = ["--set", "min_free_kbytes=128", "--set", "threads=4", "--set", "rss_pages=2048",
         "--set", "order_probs=[0.8, 0.1, 0.05, 0.05]"]  # fmt: skip
OVER = {"min_free_kbytes": 128, "threads": 4, "rss_pages": 2048, "order_probs": [0.8, 0.1, 0.05, 0.05]}


def _json(args):
    r = runner.invoke(app, ["rare", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_no_tilt_is_plain_sampling():
    doc = _json([*SMALL, "-n", "20000", "-p", "tif_memdie", "-s", "4"])
    r = doc["policies"]["tif_memdie"]
    plain = api.simulate(None, 20000, 4, ["tif_memdie"], **OVER)
    e = plain.policies["tif_memdie"]["exhausted"]
    assert r["hits"] == e["count"] > 0 and r["p"] == e["p"] and r["n"] == 20000
    assert doc["tilt"] == {}


def test_tilt_from_flag_and_from_file(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("min_free_kbytes = 128\nthreads = 4\nrss_pages = 2048\norder_probs = [0.8, 0.1, 0.05, 0.05]\n"
                   "[tilt]\nexit_allocs = 6\n")  # fmt: skip
    a = _json([str(cfg), "-n", "2000", "-p", "tif_memdie"])
    b = _json(["-n", "2000", "-p", "tif_memdie", *SMALL, "--tilt", "exit_allocs=6"])
    assert a["tilt"] == b["tilt"] == {"exit_allocs": 6}
    assert a["policies"] == b["policies"]
    # --tilt wins over the file
    c = _json([str(cfg), "-n", "2000", "-p", "tif_memdie", "--tilt", "exit_allocs=5"])
    assert c["tilt"] == {"exit_allocs": 5}


def test_table_output():
    r = runner.invoke(app, ["rare", *SMALL, "-n", "20000", "-p", "tif_memdie", "--tilt", "exit_allocs=6"])
    assert r.exit_code == 0, r.output
    assert "hits" in r.output
    assert "importance sampling" in r.output and "ESS" in r.output and "mean weight" in r.output


def test_bad_tilts_exit_2(tmp_path):
    for args, needle in (
        (["--tilt", "nosuch=1"], "nosuch"),
        (["--tilt", "threads=4"], "threads"),
        (["--tilt", "exit_allocs"], "name=value"),
        (["-o", "nosuch"], "outcome"),
    ):
        r = runner.invoke(app, ["rare", "-n", "10", *args])
        assert r.exit_code == 2, (args, r.output)
        lines = [ln for ln in r.output.strip().splitlines() if ln]
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.output
    cfg = tmp_path / "bad.toml"
    cfg.write_text("tilt = 3\n")
    r = runner.invoke(app, ["rare", str(cfg), "-n", "10"])
    assert r.exit_code == 2 and "tilt" in r.output
