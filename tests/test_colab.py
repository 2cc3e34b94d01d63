import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_badge_and_bootstrap_match_setting(path):
    notebook = nbformat.read(path, as_version=4)
    relative = path.relative_to(ROOT).as_posix()
    badge, bootstrap = notebook.cells[0], notebook.cells[1]
    assert badge.cell_type == "markdown"
    assert badge.source == colab.badge_markdown(relative)
    assert f"github/{colab.REPOSITORY}/blob/{colab.BRANCH}/{relative}" in badge.source
    assert bootstrap.cell_type == "code"
    assert bootstrap.source == colab.bootstrap_source()


def test_bootstrap_clones_the_configured_repository():
    source = colab.bootstrap_source()
    assert f"https://github.com/{colab.REPOSITORY}.git" in source
    assert 'if "google.colab" in sys.modules:' in source


def test_bootstrap_does_nothing_outside_colab(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(colab.bootstrap_source(), "bootstrap", "exec"), namespace)
    assert "course_dir" not in namespace
    assert list(tmp_path.iterdir()) == []


def test_sync_script_finds_nothing_stale():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_colab_cells.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
