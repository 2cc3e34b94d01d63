"""Captioned shapes: procedurally drawn scenes of coloured shapes with captions.

The mini profile draws each image with PIL from a seeded generator, so the
set needs no files and is the same on every machine. The full profile loads
Flickr8k from the Hub (``jxie/flickr8k``) and adapts it to the same schema.

Columns common to both profiles:

- ``image``: PIL RGB image. Mini: ``image_size`` x ``image_size`` pixels;
  full: the photo's own size (model processors resize it).
- ``captions``: list of strings (4 in mini, 5 in full).
- ``caption``: the first caption.
- ``label``: ClassLabel ``["no", "yes"]``. Mini: the scene contains a
  warm-coloured (red, orange or yellow) circle or star, see :func:`label_rule`.
  Full: a caption mentions a dog.

Columns only in mini:

- ``colors``, ``shapes``, ``sizes``, ``positions``: lists of strings, one
  entry per object in drawing order.
- ``count`` (int32) and ``background`` (string).
- ``vague_caption`` (bool): every caption leaves out the colour of all
  objects, or the shape of all objects.
- ``corruption`` (string): ``"none"``, ``"occluded"`` or ``"faded"``. In an
  occluded image, noise patches hide most of each shape and its outline. A
  faded image is nearly grey and noisy, which hides the colours.

The label needs both colour and shape. Vague captions hide one of them from
the text, and corrupted images hide one of them from the pixels, each
independently, so a model that fuses image and caption beats either alone.
"""

import io
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from course_utils.data._checks import check_count, check_split, require_columns
from course_utils.data.shape_captions import OMIT_CHOICES, make_captions
from course_utils.profiles import get_profile

#: Object colour names with their mean RGB values. Prompts use these names.
COLOR_RGB = {
    "red": (220, 30, 30),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
COLORS = tuple(COLOR_RGB)
SHAPES = ("circle", "square", "triangle", "star")
SIZES = ("small", "medium", "large")
#: 3 x 3 grid cells, row by row. An object's position is the cell that contains its centre.
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
BACKGROUND_RGB = {
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "beige": (225, 210, 170),
}
BACKGROUNDS = tuple(BACKGROUND_RGB)
CORRUPTIONS = ("none", "occluded", "faded")

WARM_COLORS = ("red", "orange", "yellow")
LABEL_SHAPES = ("circle", "star")
LABEL_NAMES = ("no", "yes")

SPLITS = ("train", "validation", "test")
#: Images per split when ``num_images`` is None (mini profile).
SPLIT_SIZES = {"train": 4000, "validation": 500, "test": 500}
#: Upper bound on ``num_images`` in mini, which keeps a load within memory and minutes.
MAX_IMAGES = 50_000
#: Share of images with 1, 2 and 3 objects. Half are single objects because
#: captioning and text-to-image models learn those first.
COUNT_PROBS = (0.5, 0.3, 0.2)
VAGUE_RATE = 0.3
CORRUPTION_RATE = 0.3

FULL_SOURCE = "jxie/flickr8k"
_FULL_CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(5))

# Radius ranges as fractions of the image side. Single objects are drawn
# larger because they have the whole image to themselves.
_RADIUS_SINGLE = {"small": (0.10, 0.13), "medium": (0.14, 0.18), "large": (0.19, 0.24)}
_RADIUS_MULTI = {"small": (0.07, 0.09), "medium": (0.095, 0.115), "large": (0.12, 0.15)}
_SUPERSAMPLE = 4  # draw at 4x and downsample, so edges are anti-aliased
# Occluding patch: half side and shift from the object's centre, as fractions
# of its radius. The patch covers about two thirds of the object and leaves a
# fragment of outline and colour visible (checked by eye in the preview grid).
_OCCLUDER_SCALE = 1.0
_OCCLUDER_SHIFT = (0.45, 0.6)


def label_rule(colors: Sequence[str], shapes: Sequence[str]) -> int:
    """Return 1 if some object is a warm-coloured circle or star, else 0."""
    return int(any(c in WARM_COLORS and s in LABEL_SHAPES for c, s in zip(colors, shapes, strict=True)))


def _as_list(value, count: int, name: str, valid: Sequence[str]) -> list[str]:
    values = [value] * count if isinstance(value, str) else list(value)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries but there are {count} objects.")
    for v in values:
        if v not in valid:
            raise ValueError(f"Unknown {name[:-1]} {v!r}; choose from {', '.join(valid)}.")
    return values


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    # Vertices on circles around (cx, cy); angle in radians, 0 = point up.
    if shape == "square":
        n, radii, start = 4, [r * 1.2], np.pi / 4  # half side 0.85 r: area close to the circle's
    elif shape == "triangle":
        n, radii, start = 3, [r * 1.25], 0.0
    else:  # star: alternate outer tips and inner notches
        n, radii, start = 10, [r * 1.2, r * 0.5], 0.0
    points = []
    for k in range(n):
        theta = start + angle + 2 * np.pi * k / n
        radius = radii[k % len(radii)]
        points.append((cx + radius * np.sin(theta), cy - radius * np.cos(theta)))
    return points


def render_scene(
    colors: str | Sequence[str],
    shapes: str | Sequence[str],
    positions: str | Sequence[str] | None = None,
    sizes: str | Sequence[str] | None = None,
    background: str = "grey",
    image_size: int = 64,
    corruption: str = "none",
    seed: int = 0,
) -> Image.Image:
    """Draw one scene, for example ``render_scene("red", "circle")`` for "a red circle".

    Args:
        colors: Colour name (or one per object) from :data:`COLORS`.
        shapes: Shape name (or one per object) from :data:`SHAPES`.
        positions: Grid cells from :data:`POSITIONS`; default ``"center"`` for
            one object, else distinct random cells. Objects must not share a cell.
        sizes: Names from :data:`SIZES`; default ``"large"``.
        background: Name from :data:`BACKGROUNDS`.
        image_size: Side in pixels (at least 16).
        corruption: One of :data:`CORRUPTIONS`.
        seed: Seeds the jitter of colour, position, rotation and pixel noise.

    Returns:
        PIL RGB image of ``image_size`` x ``image_size`` pixels.
    """
    rng = np.random.default_rng(seed)
    count = 1 if isinstance(colors, str) else len(colors)
    colors = _as_list(colors, count, "colors", COLORS)
    shapes = _as_list(shapes, count, "shapes", SHAPES)
    if positions is None:
        positions = ["center"] if count == 1 else [POSITIONS[i] for i in rng.choice(9, count, replace=False)]
    positions = _as_list(positions, count, "positions", POSITIONS)
    if len(set(positions)) != count:
        raise ValueError(f"positions {positions} repeat a cell; give each object its own cell.")
    sizes = _as_list(sizes if sizes is not None else "large", count, "sizes", SIZES)
    if background not in BACKGROUND_RGB:
        raise ValueError(f"Unknown background {background!r}; choose from {', '.join(BACKGROUNDS)}.")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {corruption!r}; choose from {', '.join(CORRUPTIONS)}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an integer of at least 16 pixels, got {image_size!r}.")
    return _draw(colors, shapes, positions, sizes, background, image_size, corruption, rng)


def _draw(colors, shapes, positions, sizes, background, image_size, corruption, rng) -> Image.Image:
    big = image_size * _SUPERSAMPLE
    # Shift the brightness more than the hue, so a grey background stays grey.
    background_shift = rng.integers(-12, 13) + rng.integers(-4, 5, 3)
    bg = np.clip(np.array(BACKGROUND_RGB[background]) + background_shift, 0, 255)
    canvas = Image.new("RGB", (big, big), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(canvas)
    radius_table = _RADIUS_SINGLE if len(colors) == 1 else _RADIUS_MULTI
    boxes = []
    for color, shape, position, size in zip(colors, shapes, positions, sizes, strict=True):
        r = rng.uniform(*radius_table[size])
        row, col = divmod(POSITIONS.index(position), 3)
        # Jitter the centre inside its cell, keeping the whole shape inside the image.
        centre = []
        for cell in (col, row):
            lo, hi = cell / 3 + 0.01, (cell + 1) / 3 - 0.01
            c = np.clip((cell + 0.5) / 3 + rng.uniform(-0.05, 0.05), max(lo, r), min(hi, 1 - r))
            centre.append(c)
        cx, cy, rr = centre[0] * big, centre[1] * big, r * big
        fill = tuple(int(v) for v in np.clip(np.array(COLOR_RGB[color]) + rng.integers(-15, 16, 3), 0, 255))
        if shape == "circle":
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=fill)
        else:
            draw.polygon(_polygon(shape, cx, cy, rr, rng.uniform(-0.3, 0.3)), fill=fill)
        boxes.append((cx, cy, rr))
    image = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    pixels = np.asarray(image, dtype=np.float32)

    if corruption == "occluded":
        # A patch of grey noise as large as the object, shifted to one side,
        # covers most of it: a fragment of its outline and colour peeks out.
        for cx, cy, rr in boxes:
            half = _OCCLUDER_SCALE * rr / _SUPERSAMPLE
            angle = rng.uniform(0, 2 * np.pi)
            shift = rng.uniform(*_OCCLUDER_SHIFT) * rr / _SUPERSAMPLE
            px, py = cx / _SUPERSAMPLE + shift * np.cos(angle), cy / _SUPERSAMPLE + shift * np.sin(angle)
            x0, x1 = max(int(px - half), 0), min(int(np.ceil(px + half)), image_size)
            y0, y1 = max(int(py - half), 0), min(int(np.ceil(py + half)), image_size)
            if x1 > x0 and y1 > y0:
                pixels[y0:y1, x0:x1] = rng.uniform(60, 200, (y1 - y0, x1 - x0, 1))
    elif corruption == "faded":
        # Grey plus luminance noise: shapes stay visible, colours mostly do not.
        luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        pixels = 0.9 * luma[..., None] + 0.1 * pixels
        pixels += rng.normal(0.0, 10.0, pixels.shape[:2])[..., None]
    # Mild sensor-like noise on every image, so no two backgrounds are flat copies.
    pixels += rng.normal(0.0, 4.0, pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def sample_scene(rng: np.random.Generator, image_size: int = 64) -> dict:
    """Draw the attributes, captions, label and image of one random scene.

    The label is drawn first (half "yes") and the scene is redrawn until it
    matches, so both classes are balanced.

    Returns:
        A dict with the mini columns (see the module docstring).
    """
    label = int(rng.random() < 0.5)
    while True:
        count = int(rng.choice(len(COUNT_PROBS), p=COUNT_PROBS)) + 1
        colors = [COLORS[i] for i in rng.integers(len(COLORS), size=count)]
        shapes = [SHAPES[i] for i in rng.integers(len(SHAPES), size=count)]
        if label_rule(colors, shapes) == label:
            break
    sizes = [SIZES[i] for i in rng.integers(len(SIZES), size=count)]
    positions = [POSITIONS[i] for i in rng.choice(len(POSITIONS), count, replace=False)]
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    # Caption vagueness and image corruption are drawn independently, so some
    # scenes lose the colour in one modality and the shape in the other.
    omit = OMIT_CHOICES[1 + int(rng.integers(2))] if rng.random() < VAGUE_RATE else None
    corruption = CORRUPTIONS[1 + int(rng.integers(2))] if rng.random() < CORRUPTION_RATE else "none"
    captions = make_captions(colors, shapes, sizes, positions, background, rng, omit=omit)
    image = _draw(colors, shapes, positions, sizes, background, image_size, corruption, rng)
    return {
        "image": image,
        "captions": captions,
        "caption": captions[0],
        "colors": colors,
        "shapes": shapes,
        "sizes": sizes,
        "positions": positions,
        "count": count,
        "background": background,
        "vague_caption": omit is not None,
        "corruption": corruption,
        "label": label,
    }


def _features():
    from datasets import ClassLabel, Features, Image, List, Value

    strings = List(Value("string"))
    return Features(
        {
            "image": Image(mode="RGB"),
            "captions": strings,
            "caption": Value("string"),
            "colors": strings,
            "shapes": strings,
            "sizes": strings,
            "positions": strings,
            "count": Value("int32"),
            "background": Value("string"),
            "vague_caption": Value("bool"),
            "corruption": Value("string"),
            "label": ClassLabel(names=list(LABEL_NAMES)),
        }
    )


def image_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """Return the seed of image ``index`` of ``split``.

    Each image has its own stream, derived from (seed, split, index): the
    first n images are the same whatever ``num_images`` is, and the splits
    draw from different streams.
    """
    return np.random.SeedSequence([seed, SPLITS.index(split), index])


@lru_cache(maxsize=4)
def _generate(split: str, num_images: int, seed: int, image_size: int):
    from datasets import Dataset

    rows = [sample_scene(np.random.default_rng(image_seed(seed, split, i)), image_size)
            for i in range(num_images)]
    for row in rows:
        # Store uncompressed BMP: encoding is about 20x faster than PNG, the default,
        # and 4000 images of 64 x 64 take 49 MB of memory instead of 31 MB.
        buffer = io.BytesIO()
        row["image"].save(buffer, format="BMP")
        row["image"] = {"bytes": buffer.getvalue(), "path": None}
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    return Dataset.from_dict(columns, features=_features(), split=split)


def load_captioned_shapes(
    split: str = "train",
    num_images: int | None = None,
    seed: int = 0,
    image_size: int = 64,
    profile: str | None = None,
):
    """Load captioned shapes (mini) or Flickr8k (full) as a ``datasets.Dataset``.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        num_images: How many images; None takes :data:`SPLIT_SIZES` (mini,
            4000/500/500) or the whole split (full). Mini accepts up to
            :data:`MAX_IMAGES`; full raises if the split has fewer.
        seed: Mini: seeds the drawing (same seed, byte-identical images).
            Full: seeds which ``num_images`` photos are picked.
        image_size: Side of the mini images in pixels; full keeps each photo's size.
        profile: ``"mini"`` or ``"full"``; None resolves the active profile.

    Returns:
        ``datasets.Dataset`` with the columns listed in the module docstring.
        Mini results are cached in memory per argument set, so reloading in a
        notebook is instant.
    """
    check_split(split, SPLITS, "load_captioned_shapes")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if get_profile(profile) == "full":
        return _load_full(split, num_images, seed)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an integer of at least 16 pixels, got {image_size!r}.")
    if num_images is None:
        num_images = SPLIT_SIZES[split]
    num_images = check_count(num_images, MAX_IMAGES, "num_images", "a mini captioned-shapes split")
    # A copy that shares the Arrow data, so set_format on the result leaves the cache alone.
    return _generate(split, num_images, seed, image_size).with_format(None)


def _load_full(split: str, num_images: int | None, seed: int):
    from datasets import load_dataset

    # NOTE: not run here (no network). Flickr8k's splits are separate parquet files on the Hub.
    raw = load_dataset(FULL_SOURCE, split=split)
    return adapt_flickr8k(raw, num_images=num_images, seed=seed, split=split)


def _mentions_dog(captions: Sequence[str]) -> bool:
    return any(re.search(r"\b(dog|dogs|puppy|puppies)\b", c.lower()) for c in captions)


def adapt_flickr8k(raw, num_images: int | None = None, seed: int = 0, split: str = "train"):
    """Convert a Flickr8k ``Dataset`` (``image``, ``caption_0`` ... ``caption_4``) to the common schema.

    Returns:
        ``Dataset`` with ``image`` (RGB), ``captions`` (5 strings),
        ``caption`` and ``label`` (ClassLabel no/yes: a caption mentions a dog).
    """
    from datasets import ClassLabel, Features, Image, List, Value

    require_columns(raw, ("image", *_FULL_CAPTION_COLUMNS), FULL_SOURCE, "The Hub data set may have changed layout.")
    count = check_count(num_images, len(raw), "num_images", f"the {split!r} split of {FULL_SOURCE}")
    if count < len(raw):
        raw = raw.shuffle(seed=seed).select(range(count))

    def to_common(batch):
        captions = [list(c) for c in zip(*(batch[k] for k in _FULL_CAPTION_COLUMNS), strict=True)]
        return {
            "captions": captions,
            "caption": [c[0] for c in captions],
            "label": [int(_mentions_dog(c)) for c in captions],
        }

    features = Features(
        {
            "image": Image(mode="RGB"),
            "captions": List(Value("string")),
            "caption": Value("string"),
            "label": ClassLabel(names=list(LABEL_NAMES)),
        }
    )
    extra = [c for c in raw.column_names if c != "image"]
    return raw.map(to_common, batched=True, remove_columns=extra, features=features)
