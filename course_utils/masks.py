"""Inpainting masks: shapes, feathering and the checks a pipeline needs.

Convention (the diffusers inpainting pipelines'): a mask is a single-channel
``"L"`` image the size of the picture, where white (255) marks pixels to
repaint and black (0) pixels to keep. Taught in
``notebooks/session2/09_diffusion_inpainting.ipynb``.
"""

import math
import numbers

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from course_utils._validation import is_real


def _check_size(size) -> tuple[int, int]:
    if (not isinstance(size, tuple | list) or len(size) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size)):
        raise ValueError(f"size must be (width, height) in positive whole pixels, got {size!r}.")
    return int(size[0]), int(size[1])


def _check_coordinates(name: str, values, parts: tuple[str, ...]) -> None:
    """Raise unless ``values`` is a tuple or list of finite numbers, one per name in ``parts``."""
    if not isinstance(values, tuple | list) or len(values) != len(parts):
        raise ValueError(f"{name} must be ({', '.join(parts)}) in pixels, got {values!r}.")
    for value in values:
        if not is_real(value):
            raise TypeError(f"{name} must contain numbers of pixels, got {value!r} in {name} {tuple(values)!r}.")
        if not math.isfinite(value):
            raise ValueError(f"{name} must contain finite numbers of pixels, got {value!r} in {name} {tuple(values)!r}.")


def _check_radius(radius, allow_zero: bool) -> None:
    """Raise unless ``radius`` is a finite number of pixels, positive or (with ``allow_zero``) zero."""
    rule = "a finite number of pixels, 0 or more" if allow_zero else "a finite, positive number of pixels"
    if not is_real(radius):
        raise TypeError(f"radius must be {rule}, got {type(radius).__name__} ({radius!r}).")
    # NaN fails both comparisons, so it is rejected here too.
    if not (math.isfinite(radius) and (radius >= 0 if allow_zero else radius > 0)):
        raise ValueError(f"radius must be {rule}, got {radius!r}.")


def rectangle_mask(size, box) -> Image.Image:
    """Return a mask that is white inside ``box``.

    Args:
        size: ``(width, height)`` of the image, in pixels.
        box: ``(left, top, right, bottom)`` in pixels, right and bottom exclusive;
            it must overlap the image and have positive width and height.
    """
    width, height = _check_size(size)
    _check_coordinates("box", box, ("left", "top", "right", "bottom"))
    left, top, right, bottom = box
    if right <= left or bottom <= top:
        raise ValueError(f"box {tuple(box)} is empty; give (left, top, right, bottom) with right > left and bottom > top.")
    if right <= 0 or bottom <= 0 or left >= width or top >= height:
        raise ValueError(f"box {tuple(box)} lies outside the {width}x{height} image; move it inside.")
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle((left, top, right - 1, bottom - 1), fill=255)
    return mask


def circle_mask(size, center, radius: float) -> Image.Image:
    """Return a mask that is white inside a circle.

    Args:
        size: ``(width, height)`` of the image, in pixels.
        center: ``(x, y)`` of the centre, in pixels; it must lie inside the image.
        radius: Radius in pixels, positive and finite.
    """
    width, height = _check_size(size)
    _check_coordinates("center", center, ("x", "y"))
    _check_radius(radius, allow_zero=False)
    x, y = center
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"center {tuple(center)} lies outside the {width}x{height} image; move it inside.")
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= radius**2
    if not inside.any():
        raise ValueError(f"radius {radius!r} is too small to cover any pixel centre; use a radius of at least 1 pixel.")
    return Image.fromarray((inside * 255).astype(np.uint8), mode="L")


def feather_mask(mask: Image.Image, radius: float) -> Image.Image:
    """Blur a mask's edge so the repainted region blends into its surroundings.

    Args:
        mask: Binary ``"L"`` mask.
        radius: Gaussian blur radius in pixels, finite; 0 returns a copy. Larger radii
            blend more but also let the pipeline change pixels just outside the mask.

    Returns:
        A soft ``"L"`` mask with values between 0 and 255.
    """
    _check_radius(radius, allow_zero=True)
    check_mask(mask, allow_soft=True)
    if radius == 0:
        return mask.copy()
    soft = mask.filter(ImageFilter.GaussianBlur(radius))
    if np.asarray(soft).max() < 128:
        raise ValueError(
            f"radius {radius!r} blurs this mask so much that no pixel stays at 128 or above, and the pipeline "
            "would repaint nothing; use a smaller radius or a larger white region."
        )
    return soft


def check_mask(mask, image=None, allow_soft: bool = False) -> Image.Image:
    """Validate a mask against the convention and, optionally, against its image.

    Args:
        mask: PIL image, mode ``"L"`` (or ``"1"``, converted).
        image: The picture to inpaint; if given, sizes must match.
        allow_soft: Accept grey values (a feathered mask); otherwise only 0 and 255.

    Returns:
        The mask in mode ``"L"``.

    Raises:
        TypeError: not a PIL image. ValueError: wrong mode, size mismatch,
            values 0 and 1 instead of 0 and 255, grey values when not allowed,
            or nothing to repaint.
    """
    if isinstance(mask, np.ndarray):
        raise TypeError(
            f"mask must be a PIL image, got a numpy array of shape {mask.shape} and dtype {mask.dtype}. Convert "
            "an array of 0 and 255 with Image.fromarray(array.astype('uint8'), mode='L'), or a boolean array "
            "with Image.fromarray(array.astype('uint8') * 255, mode='L')."
        )
    if not isinstance(mask, Image.Image):
        raise TypeError(f"mask must be a PIL image, got {type(mask).__name__}.")
    if mask.mode == "1":
        mask = mask.convert("L")
    if mask.mode != "L":
        raise ValueError(
            f"mask has mode {mask.mode!r}; masks are single-channel 'L' images (white = repaint). "
            "Convert with mask.convert('L')."
        )
    if image is not None and not isinstance(image, Image.Image):
        raise TypeError(
            f"image must be a PIL image, got {type(image).__name__}; convert an array with Image.fromarray(array)."
        )
    if image is not None and image.size != mask.size:
        raise ValueError(
            f"mask is {mask.size[0]}x{mask.size[1]} but the image is {image.size[0]}x{image.size[1]}; "
            "make the mask for the same size (or resize both)."
        )
    values = np.asarray(mask)
    if values.max() == 1:
        # An "L" mask with maximum 1 contains only 0 and 1: usually a boolean array that was not scaled.
        raise ValueError(
            "mask contains only 0 and 1, but masks use 0 (keep) and 255 (repaint), so the pipeline would "
            "repaint nothing. Scale it with mask.point(lambda v: v * 255)."
        )
    if not allow_soft and not np.isin(values, (0, 255)).all():
        raise ValueError(
            "mask has grey values; a hard mask contains only 0 (keep) and 255 (repaint). Threshold it with "
            "mask.point(lambda v: 255 if v >= 128 else 0), or pass allow_soft=True for a feathered mask."
        )
    if values.max() == 0:
        raise ValueError("mask is all black, so there is nothing to repaint; draw a white region.")
    if values.max() < 128:
        # StableDiffusionInpaintPipeline binarizes at 0.5, so such a mask repaints nothing.
        raise ValueError(
            f"mask peaks at {values.max()} of 255; the pipeline repaints only where it is at least 128, "
            "so nothing would change. Feather less or enlarge the white region."
        )
    return mask
