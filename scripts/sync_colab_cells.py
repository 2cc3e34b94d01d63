"""Write each notebook's "Open in Colab" badge and bootstrap cell from course_utils.colab.

The first two cells of every notebook are generated: a markdown badge (tagged
``colab-badge``) and the bootstrap code cell (tagged ``colab-bootstrap``).
Run this after changing ``course_utils.colab.REPOSITORY`` or adding a
notebook; ``tests/test_colab.py`` fails until they agree.

Usage: python scripts/sync_colab_cells.py [--check]
"""

import argparse
import sys
from pathlib import Path

import nbformat

from course_utils.colab import BADGE_TAG, BOOTSTRAP_TAG, badge_markdown, bootstrap_source

ROOT = Path(__file__).resolve().parents[1]


def expected_cells(notebook_path: Path) -> list:
    """Return the two generated cells for the notebook at ``notebook_path``."""
    relative = notebook_path.resolve().relative_to(ROOT).as_posix()
    badge = nbformat.v4.new_markdown_cell(badge_markdown(relative), id="colab-badge")
    badge.metadata["tags"] = [BADGE_TAG]
    bootstrap = nbformat.v4.new_code_cell(bootstrap_source(), id="colab-bootstrap")
    bootstrap.metadata["tags"] = [BOOTSTRAP_TAG]
    return [badge, bootstrap]


def is_generated(cell) -> bool:
    """Return True for a badge or bootstrap cell written by this script."""
    return bool({BADGE_TAG, BOOTSTRAP_TAG} & set(cell.metadata.get("tags", [])))


def sync(notebook_path: Path, check: bool) -> bool:
    """Make the notebook start with the generated cells; return True if it changed."""
    notebook = nbformat.read(notebook_path, as_version=4)
    lesson = [cell for cell in notebook.cells if not is_generated(cell)]
    expected = expected_cells(notebook_path)
    current = [cell for cell in notebook.cells if is_generated(cell)]
    if [c.source for c in current] == [c.source for c in expected] and notebook.cells[:2] == current:
        return False
    if not check:
        notebook.cells = expected + lesson
        nbformat.write(notebook, notebook_path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale notebooks, change nothing")
    args = parser.parse_args()
    stale = [p for p in sorted((ROOT / "notebooks").rglob("*.ipynb"))
             if ".ipynb_checkpoints" not in p.parts and sync(p, args.check)]
    for path in stale:
        print(("stale: " if args.check else "updated: ") + str(path.relative_to(ROOT)))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
