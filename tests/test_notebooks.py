"""The notebooks run, in their quick configuration, and their jupytext twins are in sync."""

import pathlib

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.md"))


def test_there_are_three_notebooks():
  assert [p.stem for p in NOTEBOOKS] == ["01_quickstart", "02_new_knob", "03_tradeoff"]


@pytest.mark.parametrize("twin", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_is_committed_in_sync_and_without_outputs(twin):
  committed = nbformat.read(twin.with_suffix(".ipynb"), as_version=4)
  text = jupytext.read(twin)
  assert [(c.cell_type, c.source) for c in committed.cells] == [
      (c.cell_type, c.source) for c in text.cells], (
      f"{twin.name} and its .ipynb differ: run `jupytext --sync` or "
      f"`jupytext --to ipynb {twin.name}`")
  assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")


#: The quick start runs in `make test`; the other two (about 37 s each on 2 cores) run with the
#: slow set, which CI runs too, to keep `make test` within its 15 minutes.
RUN = [pytest.param(p, marks=() if p.stem == "01_quickstart" else pytest.mark.slow)
       for p in NOTEBOOKS]


@pytest.mark.parametrize("twin", RUN, ids=lambda p: p.stem)
def test_notebook_runs(twin, monkeypatch):
  monkeypatch.setenv("ONEADAPT_QUICK", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  notebook = nbformat.read(twin.with_suffix(".ipynb"), as_version=4)
  client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(twin.parent)}})
  client.execute()  # raises CellExecutionError, naming the cell, when one fails
  errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
  assert not errors
