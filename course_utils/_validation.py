"""Type and range checks shared by the image and plotting helpers."""

import numbers


def is_real(value) -> bool:
    """Return whether ``value`` is a real number; bools are not, although Python counts them as ints."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value) -> bool:
    """Return whether ``value`` is an integer other than a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_columns(columns) -> None:
    """Raise unless ``columns`` (images per row) is None or an integer of at least 1."""
    if columns is None:
        return
    if not is_integer(columns):
        raise TypeError(f"columns must be a whole number of images per row, or None, got {columns!r}.")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}; pass None for the default layout.")
