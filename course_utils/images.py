"""Image preparation, grids and prompt checks for the CLIP, BLIP and diffusion lessons."""

import decimal
import math
import warnings

import numpy as np
from PIL import Image

from course_utils._validation import check_columns, is_integer, is_real

#: Modes in which PIL opens a 16-bit greyscale image, such as a 16-bit PNG.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def check_prompts(prompts) -> list[str]:
    """Return ``prompts`` as a non-empty list of strings, or raise a clear error.

    A single string, the empty string included, becomes a one-item list. An empty
    prompt is valid: with no negative prompt, diffusers encodes ``""`` for the
    unconditional half of classifier-free guidance too, so the image is generated
    without text guidance.
    """
    from course_utils.text import check_sentences

    try:
        return check_sentences(prompts, name="prompts")
    except ValueError:
        raise ValueError("The prompt list is empty: pass at least one prompt.") from None


def check_multiple_of(size, multiple: int = 8) -> tuple[int, int]:
    """Check that ``(width, height)`` are positive multiples of ``multiple``.

    Stable Diffusion's autoencoder shrinks each side by 8, so pipelines need
    both sides divisible by 8.

    Args:
        size: ``(width, height)`` in pixels, a tuple or list of two numbers.
        multiple: Positive integer that both sides must be divisible by.

    Returns:
        ``(width, height)`` as ints.

    Raises:
        TypeError: ``size`` is not a tuple or list of numbers, or ``multiple`` is not an integer.
        ValueError: ``size`` does not contain two values, a side is not positive or not
            finite, a side is not a multiple of ``multiple``, or ``multiple`` is below 1.
    """
    if not is_integer(multiple):
        raise TypeError(f"multiple must be a positive integer, got {multiple!r}.")
    if multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple}.")
    if is_real(size):
        raise TypeError(f"size must be a (width, height) pair in pixels, got the single number {size!r}; "
                        f"for a square image pass ({size!r}, {size!r}).")
    if not isinstance(size, tuple | list):
        raise TypeError(f"size must be a (width, height) pair in pixels, got {type(size).__name__} ({size!r}); "
                        "pass a tuple such as (512, 512).")
    if len(size) != 2:
        raise ValueError(f"size must be (width, height), got {len(size)} values {tuple(size)}. For an array of "
                         "shape (height, width, channels), pass (array.shape[1], array.shape[0]).")
    width, height = size
    if not (is_real(width) and is_real(height)):
        raise TypeError(f"size must contain two numbers of pixels, got {tuple(size)!r}.")
    if not (math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"size must contain finite numbers of pixels, got {tuple(size)!r}.")
    if width <= 0 or height <= 0:
        raise ValueError(f"Image size {width}x{height} is not positive: both sides must be at least {multiple} "
                         f"pixels, for example {max(multiple, width)}x{max(multiple, height)}.")
    if width % multiple or height % multiple:
        fixed = (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))
        raise ValueError(
            f"Image size {width}x{height} is not divisible by {multiple}; use for example "
            f"{fixed[0]}x{fixed[1]} (course_utils.images.prepare_image resizes for you)."
        )
    return int(width), int(height)


def _smallest_strength(num_inference_steps: int) -> float:
    """Return a short decimal strength that runs one of ``num_inference_steps`` img2img steps."""
    exact = 1 / num_inference_steps
    # In floating point 49 * (1 / 49) is 0.9999999999999999, which int() truncates to 0.
    while int(num_inference_steps * exact) < 1:
        exact = math.nextafter(exact, 1.0)
    # Three significant digits, rounded up, so that the message shows 0.0205 instead of
    # 0.020408163265306124. Rounding up keeps the product at 1 or more.
    rounded = decimal.Decimal(f"{exact:.3g}")
    if float(rounded) < exact:
        rounded += decimal.Decimal(1).scaleb(rounded.adjusted() - 2)
    return float(rounded)


def check_strength(strength, num_inference_steps) -> float:
    """Check that an image-to-image ``strength`` runs at least one denoising step.

    diffusers' ``StableDiffusionImg2ImgPipeline`` (``get_timesteps`` in diffusers 0.42)
    runs ``min(int(num_inference_steps * strength), num_inference_steps)`` denoising
    steps. When that is 0 the pipeline fails deep inside with "stack expects a
    non-empty TensorList", so this check raises first, with a message that names the fix.

    Args:
        strength: Share of the noise schedule applied to the input image, in (0, 1].
            Higher values run more steps and keep less of the input; 1 starts from almost pure noise.
        num_inference_steps: Steps of the full schedule, a positive integer.

    Returns:
        ``strength`` as a float.

    Raises:
        TypeError: ``strength`` is not a real number (bools included), or
            ``num_inference_steps`` is not an integer.
        ValueError: ``strength`` lies outside (0, 1], ``num_inference_steps`` is below 1,
            or the two together run no denoising step.

    Used in ``notebooks/session2/08_diffusion_img2img.ipynb``.
    """
    if not is_integer(num_inference_steps):
        raise TypeError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps}.")
    if not is_real(strength):
        raise TypeError(f"strength must be a number in (0, 1], got {type(strength).__name__} ({strength!r}).")
    steps = int(num_inference_steps)
    # Comparisons with NaN are False, so NaN fails this range check too.
    if not 0 < strength <= 1:
        smallest = _smallest_strength(steps)
        raise ValueError(
            f"strength must lie in (0, 1], got {float(strength)} with num_inference_steps={steps}. "
            f"The smallest strength that runs one of {steps} steps is {smallest} (about 1/{steps}); "
            "strength 1 starts from almost pure noise."
        )
    if min(int(steps * strength), steps) < 1:
        more_steps = math.ceil(1 / strength) if math.isfinite(1 / strength) else None
        while more_steps is not None and int(more_steps * strength) < 1:
            more_steps += 1
        fix = f"use strength >= {_smallest_strength(steps)} (about 1/{steps})"
        if more_steps is not None:
            fix += f", or num_inference_steps >= {more_steps}"
        raise ValueError(
            f"strength={float(strength)} with num_inference_steps={steps} runs int({steps} * {float(strength)}) = 0 "
            f"denoising steps, and the image-to-image pipeline fails with no step to run. To run at least one, "
            f"{fix}. strength must lie in (0, 1]."
        )
    return float(strength)


def _to_8_bit(image: Image.Image, name: str = "image") -> Image.Image:
    """Scale a 16-bit greyscale image to mode ``"L"``, reject 32-bit modes, and return other images unchanged."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        # 65535 / 255 = 257, so 0 stays 0 and 65535 becomes 255.
        return Image.fromarray(np.round(values / 257).astype(np.uint8))
    if image.mode == "I":
        raise ValueError(
            f"{name} has mode 'I' (32-bit integer pixels), whose value range is ambiguous, so it is not "
            "converted to RGB. Scale it to 0-255 and build an 8-bit image yourself. For 16-bit data "
            "(0-65535), which PIL may open as mode 'I', use Image.fromarray((np.asarray(image) // 257)"
            ".astype('uint8'))."
        )
    if image.mode == "F":
        raise ValueError(
            f"{name} has mode 'F' (32-bit float pixels), whose value range is ambiguous, so it is not "
            "converted to RGB. Scale it to 0-255 and build an 8-bit image yourself. For values in 0-1, use "
            "Image.fromarray((np.asarray(image) * 255).clip(0, 255).astype('uint8'))."
        )
    return image


def prepare_image(image: Image.Image, size, multiple: int = 8) -> Image.Image:
    """Convert an image to RGB and resize it to ``size`` for a pipeline.

    Args:
        image: PIL image. Non-RGB modes are converted with a warning: an alpha
            channel is composited on white, and 16-bit greyscale (``"I;16"`` and its
            byte orders) is scaled to 8 bits, 65535 to 255. Modes ``"I"`` (32-bit
            integer) and ``"F"`` (float) raise, because their value range is unknown.
        size: ``(width, height)`` in pixels, each a multiple of ``multiple``.
        multiple: Positive integer that both sides must be divisible by.

    Returns:
        An RGB image of exactly ``size`` (aspect ratio is not kept: crop first to keep it).

    Raises:
        TypeError: ``image`` is not a PIL image, or ``size`` is not a pair of numbers.
        ValueError: ``size`` is invalid (see :func:`check_multiple_of`), or the mode is
            ``"I"``, ``"F"`` or one that PIL cannot convert to RGB.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, got {type(image).__name__}; use PIL.Image.open(path).")
    size = check_multiple_of(size, multiple)
    if image.mode != "RGB":
        mode = image.mode
        image = _to_8_bit(image)
        try:
            if image.mode == "P" or image.has_transparency_data:
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            image = image.convert("RGB")
        except ValueError as error:
            # Pillow 13 cannot convert mode "La" (premultiplied alpha), for example.
            raise ValueError(
                f"PIL cannot convert an image of mode {mode!r} to RGB ({error}); convert it to 'RGB', "
                "'RGBA' or 'LA' yourself first, such as image.convert('LA') for mode 'La'."
            ) from error
        scaled = " after scaling its 16-bit values to 8 bits (65535 -> 255)" if mode in _SIXTEEN_BIT_MODES else ""
        warnings.warn(f"Converted image from mode {mode!r} to 'RGB'{scaled}.", stacklevel=2)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def image_grid(images, columns: int | None = None, pad: int = 2, background=(255, 255, 255)) -> Image.Image:
    """Paste images into one grid image, row by row.

    Args:
        images: Non-empty list of PIL images; each is resized to the first one's size.
            16-bit greyscale images are scaled to 8 bits, and modes ``"I"`` and ``"F"``
            raise, as in :func:`prepare_image`.
        columns: Images per row, at least 1; default None makes the grid roughly square.
        pad: Gap between images, in pixels, 0 or more.

    Returns:
        One RGB image.
    """
    images = list(images)
    if not images:
        raise ValueError("images is empty: pass at least one image.")
    if not all(isinstance(im, Image.Image) for im in images):
        raise TypeError("every item of images must be a PIL image.")
    check_columns(columns)
    if not is_integer(pad):
        raise TypeError(f"pad must be a whole number of pixels, got {pad!r}.")
    if pad < 0:
        raise ValueError(f"pad must be 0 or more pixels, got {pad}; a negative gap would overlap the images.")
    if columns is None:
        columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width + (columns - 1) * pad, rows * height + (rows - 1) * pad), background)
    for index, image in enumerate(images):
        tile = _to_8_bit(image, name=f"images[{index}]").convert("RGB")
        if tile.size != (width, height):
            tile = tile.resize((width, height))
        row, column = divmod(index, columns)
        grid.paste(tile, (column * (width + pad), row * (height + pad)))
    return grid
