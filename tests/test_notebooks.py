"""Checks on the committed notebooks themselves (nbval executes them separately)."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
NAMES = [p.relative_to(ROOT / "notebooks").as_posix() for p in NOTEBOOKS]


def test_notebooks_exist():
    assert "session1/01_text_embeddings.ipynb" in NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} has outputs; clear them before committing"
            assert cell.execution_count is None, f"cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_no_hard_coded_model_ids(path):
    notebook = nbformat.read(path, as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for forbidden in ("openai/clip", "Salesforce/", "stable-diffusion-v1-5/", "google/vit", "facebook/wav2vec2"):
        assert forbidden not in source, f"{forbidden!r} is hard-coded; use registry.model_source(role)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_lesson_has_setup_banner_and_exercises(path):
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "banner(" in code
    assert "seed_everything(" in code
    assert "## Summary" in markdown
    assert "## Exercises" in markdown
    solutions = [c for c in notebook.cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= 2
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions)


def test_unsafe_loading_absent():
    sources = [*NOTEBOOKS, *ROOT.glob("course_utils/**/*.py"), *ROOT.glob("scripts/*.py")]
    # Built from parts so that a repository-wide grep for these calls finds real uses only.
    forbidden = ("trust_remote_code" + "=True", "torch" + ".load(", "pickle" + ".load")
    for path in sources:
        text = path.read_text()
        for call in forbidden:
            assert call not in text, f"{path} contains {call}"


def test_runner_reports_failing_cell(tmp_path):
    broken = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise RuntimeError('boom')"),
    ])
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), str(path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "FAILED at cell 2" in result.stdout
    assert "RuntimeError: boom" in result.stdout
    assert "0 passed, 1 failed" in result.stdout
    assert (tmp_path / "out" / "broken.html").exists()
