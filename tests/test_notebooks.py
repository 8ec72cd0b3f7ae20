"""The notebooks run top to bottom (with a small episode count) and stay paired with their jupytext scripts.

Each notebook in ``notebooks/`` is executed with nbclient in a fresh kernel,
with ``DEPLETION_NB_EPISODES`` small so the whole file takes well under two
minutes on two cores; ``reserve-fraction`` runs its sweep instead of reading
``results/paper`` (``DEPLETION_NB_RESULTS`` empty). A cell that raises fails
the test with the cell's error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the test extra (nbformat, nbclient)")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"explore", "reserve-fraction"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_paired_with_its_percent_script(path):
    jupytext = pytest.importorskip("jupytext")
    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} missing: jupytext --set-formats ipynb,py:percent {path.name}"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    from_script = jupytext.read(script)
    cells = [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert cells == [(c.cell_type, c.source.strip()) for c in from_script.cells], (
        f"{path.name} and {script.name} differ: run jupytext --sync notebooks/{script.name}"
    )
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("DEPLETION_NB_EPISODES", os.environ.get("DEPLETION_NB_EPISODES_TEST", "200"))
    monkeypatch.setenv("DEPLETION_NB_RESULTS", "")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend, so figures show up as outputs
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no figure"
