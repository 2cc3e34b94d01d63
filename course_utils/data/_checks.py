"""Argument checks shared by the data loaders, so every loader words its errors alike."""

from collections.abc import Sequence
from pathlib import Path


def check_split(split: str, valid: Sequence[str], loader: str) -> str:
    """Return ``split`` if it is one of ``valid``, else raise a ValueError naming the choices."""
    if split not in valid:
        raise ValueError(
            f"Unknown split {split!r} for {loader}(); valid splits: {', '.join(valid)}. "
            f"Pass split={valid[0]!r}, for example."
        )
    return split


def check_count(requested: int | None, available: int, argument: str, where: str) -> int:
    """Return how many items to take: ``available`` when ``requested`` is None.

    Raises:
        TypeError: ``requested`` is not an integer.
        ValueError: ``requested`` is below 1 or above ``available``.
    """
    if requested is None:
        return available
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise TypeError(f"{argument} must be an integer or None, got {requested!r}.")
    if requested < 1:
        raise ValueError(f"{argument} must be at least 1, got {requested}.")
    if requested > available:
        raise ValueError(
            f"{argument}={requested} is more than the {available} items in {where}. "
            f"Pass {argument}={available} or fewer, or {argument}=None for all of them."
        )
    return requested


def require_dir(path: Path, description: str, fix: str) -> Path:
    """Return ``path`` if it is a folder, else raise FileNotFoundError saying how to create it."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"The {description} folder {path} does not exist. {fix} If the course data lives "
            f"elsewhere, set COURSE_DATA_DIR to the folder that contains it."
        )
    return path


def require_columns(raw, columns: Sequence[str], source: str, fix: str) -> None:
    """Raise a ValueError naming the ``columns`` that the Hub data set ``raw`` lacks.

    Args:
        raw: A ``datasets.Dataset`` loaded from ``source``.
        columns: Column names the schema adapter reads.
        source: The Hub id, for the message.
        fix: What to do instead, appended to the message.
    """
    missing = [c for c in columns if c not in raw.column_names]
    if missing:
        raise ValueError(
            f"The {source} data is missing the columns {missing}; found {raw.column_names}. {fix}"
        )
