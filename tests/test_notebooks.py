"""Every analyst notebook runs top to bottom against a demo root, and is stored without outputs."""
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01-data-quality", "02-needs-assessment", "03-outcomes", "04-quarterly-trends"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_demo(path, run_root, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("TONGXING_ROOT", str(run_root))
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(run_root)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    shown = [o for o in outputs if o.get("output_type") in ("execute_result", "display_data")]
    assert shown, "a notebook should show tables or charts"
    print(f"{path.stem}: {time.perf_counter() - started:.1f}s")
