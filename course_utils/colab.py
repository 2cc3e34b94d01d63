"""Google Colab support: the course's repository location, badges and bootstrap cell.

:data:`REPOSITORY` is the one place the course's public location is written.
``scripts/sync_colab_cells.py`` writes every notebook's "Open in Colab" badge
and bootstrap cell from it, and a test checks that they agree.
"""

# NOTE: the course's public GitHub location is assumed here; change it (and run
# `python scripts/sync_colab_cells.py`) if the repository is published elsewhere.
REPOSITORY = "multimodal-course/embeddings-and-fusion"
BRANCH = "main"

#: Folder that the bootstrap cell clones the course into, inside a Colab runtime.
COLAB_COURSE_DIR = "/content/embeddings-and-fusion"

BADGE_TAG = "colab-badge"
BOOTSTRAP_TAG = "colab-bootstrap"


def clone_url() -> str:
    """Return the ``git clone`` URL of the course."""
    return f"https://github.com/{REPOSITORY}.git"


def colab_url(notebook_path: str) -> str:
    """Return the URL that opens ``notebook_path`` (relative to the repository root) in Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{notebook_path}"


def badge_markdown(notebook_path: str) -> str:
    """Return the markdown of the "Open in Colab" badge for ``notebook_path``."""
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(notebook_path)})"
    )


def bootstrap_source() -> str:
    """Return the source of the bootstrap cell that installs the course inside Colab.

    It uses only the standard library, because ``course_utils`` is not
    installed yet when it runs, and does nothing outside Colab.
    """
    return f'''# Colab only: fetch the course and install it, so that `course_utils` and `data/`
# are available. Outside Colab this cell does nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    course_dir = "{COLAB_COURSE_DIR}"
    if not os.path.isdir(course_dir):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{BRANCH}",
                        "{clone_url()}", course_dir], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        "-r", f"{{course_dir}}/requirements.txt", "-e", course_dir], check=True)
    sys.path.insert(0, course_dir)'''
