"""Locations of the course's bundled data and mini models on disk."""

import os
from pathlib import Path

#: Root of the course checkout (the folder holding ``course_utils/`` and ``data/``).
COURSE_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Return the bundled data folder: ``$COURSE_DATA_DIR`` if set, else ``<root>/data``."""
    return Path(os.environ.get("COURSE_DATA_DIR", COURSE_ROOT / "data"))


def models_dir() -> Path:
    """Return the folder holding the course's trained mini models (``<data>/models``)."""
    return data_dir() / "models"
