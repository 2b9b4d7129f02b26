"""examples/flowers.ipynb: committed without outputs, and executed top to bottom on the digits."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "examples" / "flowers.ipynb"
CELL_TIMEOUT_S = 900  # nbclient's limit per cell: a hung cell fails (the whole notebook takes ~3 min on 2 cores)


def test_the_notebook_is_committed_without_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code), \
        "clear the outputs before committing (jupyter nbconvert --clear-output --inplace examples/flowers.ipynb)"


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_on_the_digits(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
              if o.output_type == "error"]
    assert not errors
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "test_metrics.csv").is_file() and (runs[0] / "report" / "index.html").is_file()
    last = notebook.cells[-1].outputs[0]["text"]
    assert "def space(trial, options):" in last  # hpsearch.init printed the preset's recipe
