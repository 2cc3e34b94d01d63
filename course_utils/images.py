"""Image preparation, grids and prompt checks for the CLIP, BLIP and diffusion lessons."""

import textwrap
import warnings

from PIL import Image


def check_prompts(prompts) -> list[str]:
    """Return ``prompts`` as a non-empty list of strings, or raise a clear error."""
    from course_utils.text import check_sentences

    try:
        return check_sentences(prompts)
    except ValueError:
        raise ValueError("The prompt list is empty: pass at least one prompt.") from None


def check_multiple_of(size, multiple: int = 8) -> tuple[int, int]:
    """Check that ``(width, height)`` are positive multiples of ``multiple``.

    Stable Diffusion's autoencoder shrinks each side by 8, so pipelines need
    both sides divisible by 8.
    """
    width, height = size
    if width <= 0 or height <= 0 or width % multiple or height % multiple:
        fixed = (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))
        raise ValueError(
            f"Image size {width}x{height} is not divisible by {multiple}; use for example "
            f"{fixed[0]}x{fixed[1]} (course_utils.images.prepare_image resizes for you)."
        )
    return int(width), int(height)


def prepare_image(image: Image.Image, size, multiple: int = 8) -> Image.Image:
    """Convert an image to RGB and resize it to ``size`` for a pipeline.

    Args:
        image: Any PIL image; other modes are converted to RGB with a warning
            (an alpha channel is composited on white).
        size: ``(width, height)`` in pixels, each a multiple of ``multiple``.

    Returns:
        An RGB image of exactly ``size`` (aspect ratio is not kept: crop first to keep it).
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, got {type(image).__name__}; use PIL.Image.open(path).")
    size = check_multiple_of(size, multiple)
    if image.mode != "RGB":
        warnings.warn(f"Converted image from mode {image.mode!r} to 'RGB'.", stacklevel=2)
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def image_grid(images, columns: int | None = None, pad: int = 2, background=(255, 255, 255)) -> Image.Image:
    """Paste images into one grid image, row by row.

    Args:
        images: Non-empty list of PIL images; each is resized to the first one's size.
        columns: Images per row; default None makes the grid roughly square.
        pad: Gap between images, in pixels.

    Returns:
        One RGB image.
    """
    import math

    images = list(images)
    if not images:
        raise ValueError("images is empty: pass at least one image.")
    if not all(isinstance(im, Image.Image) for im in images):
        raise TypeError("every item of images must be a PIL image.")
    columns = columns or math.ceil(math.sqrt(len(images)))
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}.")
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = Image.new("RGB", (columns * width + (columns - 1) * pad, rows * height + (rows - 1) * pad), background)
    for index, image in enumerate(images):
        tile = image.convert("RGB").resize((width, height)) if image.size != (width, height) else image.convert("RGB")
        row, column = divmod(index, columns)
        grid.paste(tile, (column * (width + pad), row * (height + pad)))
    return grid


def show_images(images, titles=None, columns: int | None = None, size: float = 2.2, suptitle=None):
    """Show images side by side with matplotlib, each with an optional title.

    Args:
        images: Non-empty list of PIL images or arrays.
        titles: Optional list of the same length.
        columns: Images per row; default all in one row up to 8.
        size: Inches per panel.

    Returns:
        The matplotlib ``Figure``.
    """
    import math

    import matplotlib.pyplot as plt
    import numpy as np

    images = list(images)
    if not images:
        raise ValueError("images is empty: pass at least one image.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"Got {len(images)} images but {len(titles)} titles.")
    columns = columns or min(len(images), 8)
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.3), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(images):
            picture = np.asarray(images[index])
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=255 if picture.dtype == np.uint8 else None)
            if titles is not None:
                ax.set_title(str(titles[index]), fontsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


#: Font size (points) of :func:`show_grid`'s row and column labels.
_LABEL_FONT_SIZE = 9


def _label_width(panel_inches: float, font_size: float) -> int:
    """Return how many characters of a label fit across one panel of ``panel_inches``."""
    # An average character of matplotlib's default font is about 0.6 em wide (an estimate),
    # and an inch is 72 points.
    return max(8, int(panel_inches * 72 / (0.6 * font_size)))


def show_grid(images, row_labels, column_labels, size: float = 1.8):
    """Show a labelled comparison grid: one row per ``row_labels`` entry, one column per ``column_labels`` entry.

    Args:
        images: PIL images or arrays in row order, ``len(row_labels) * len(column_labels)`` of them.
        row_labels: What changes down the grid (for example the masks), written left of each row.
        column_labels: What changes across it (for example the prompts), written above each column.
        size: Inches per panel. Labels longer than a panel is wide wrap onto more lines.

    Pixel values are read as :func:`show_images` reads them: uint8 on the 0-255 scale, floats
    from 0 to their own maximum. So a uint8 mask of 0 and 1 looks black; multiply it by 255.

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    for name, labels in (("row_labels", row_labels), ("column_labels", column_labels)):
        if isinstance(labels, str):
            raise TypeError(f"{name} is the string {labels!r}; pass a list of labels, such as [{labels!r}].")
    images, row_labels, column_labels = list(images), list(row_labels), list(column_labels)
    if not row_labels or not column_labels:
        empty = "row_labels" if not row_labels else "column_labels"
        raise ValueError(f"{empty} is empty: name at least one row and one column.")
    expected = len(row_labels) * len(column_labels)
    if len(images) != expected:
        raise ValueError(f"Got {len(images)} images for {len(row_labels)} rows x {len(column_labels)} columns; "
                         f"pass {expected} images in row order.")
    pictures = [np.asarray(image) for image in images]
    for index, picture in enumerate(pictures):
        if not (picture.ndim == 2 or (picture.ndim == 3 and picture.shape[-1] in (3, 4))):
            raise ValueError(f"Image {index} has shape {picture.shape}; pass PIL images or arrays of shape (H, W), "
                             f"(H, W, 3) or (H, W, 4). Move channels last with array.transpose(1, 2, 0).")
    figure, axes = plt.subplots(len(row_labels), len(column_labels), squeeze=False,
                                figsize=(size * len(column_labels) + 0.8, size * len(row_labels) + 0.3))
    for picture, ax in zip(pictures, axes.flat, strict=True):
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0,
                  vmax=255 if picture.dtype == np.uint8 else None)
        # Ticks hidden, axis kept on so that the row label (a y-label) stays visible. A light
        # frame keeps an all-white panel from vanishing into the page.
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("lightgray")
    # A label wider than its panel would run into the next one, so long prompts wrap onto
    # more lines. tight_layout then makes room for them.
    width = _label_width(size, _LABEL_FONT_SIZE)
    for ax, label in zip(axes[0], column_labels, strict=True):
        ax.set_title(textwrap.fill(str(label), width), fontsize=_LABEL_FONT_SIZE)
    for ax, label in zip(axes[:, 0], row_labels, strict=True):
        ax.set_ylabel(textwrap.fill(str(label), width), fontsize=_LABEL_FONT_SIZE)
    figure.tight_layout()
    return figure
