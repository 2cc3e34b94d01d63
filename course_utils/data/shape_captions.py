"""Natural-language captions for the captioned-shapes scenes.

Each scene gets several captions that differ in template, synonyms and word
order, so a text encoder has to learn that "a crimson disc" and "a red circle"
name the same thing. A caption may be *vague*: it leaves out every object's
colour or every object's shape, which the fusion lesson relies on.
"""

from collections.abc import Sequence

import numpy as np

#: Words a caption may use for each colour name (the first is the plain name).
COLOR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "grass-green"),
    "blue": ("blue", "cobalt", "azure"),
    "yellow": ("yellow", "golden", "lemon-yellow"),
    "purple": ("purple", "violet", "plum"),
    "orange": ("orange", "tangerine", "amber"),
}

#: Nouns a caption may use for each shape name (the first is the plain name).
SHAPE_WORDS = {
    "circle": ("circle", "disc", "round shape", "dot"),
    "square": ("square", "box", "block", "square shape"),
    "triangle": ("triangle", "triangular shape", "three-sided shape"),
    "star": ("star", "five-pointed star", "star shape"),
}

#: Nouns for an object whose shape a vague caption leaves out.
GENERIC_WORDS = ("shape", "object", "figure")

BACKGROUND_WORDS = {
    "black": ("black", "dark"),
    "white": ("white", "plain white"),
    "grey": ("grey", "gray"),
    "beige": ("beige", "sand-coloured"),
}

_WHERE = {
    "top left": ("in the top left", "in the upper left corner"),
    "top": ("at the top", "near the top edge"),
    "top right": ("in the top right", "in the upper right corner"),
    "left": ("on the left", "at the left side"),
    "center": ("in the center", "in the middle"),
    "right": ("on the right", "at the right side"),
    "bottom left": ("in the bottom left", "in the lower left corner"),
    "bottom": ("at the bottom", "near the bottom edge"),
    "bottom right": ("in the bottom right", "in the lower right corner"),
}

_COUNT_WORDS = ("zero", "one", "two", "three", "four", "five")

#: Values of ``omit``: what a vague caption leaves out.
OMIT_CHOICES = (None, "color", "shape")


def with_article(phrase: str) -> str:
    """Prefix ``phrase`` with "a" or "an" by its first letter."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _pick(rng: np.random.Generator, words: Sequence[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _noun_phrase(color, shape, size, rng, omit, plain: bool) -> str:
    # plain=True uses the first (plain) word of each list, as in "a red circle".
    words = []
    if not plain and size != "medium":
        words.append(size)
    if omit != "color":
        words.append(COLOR_WORDS[color][0] if plain else _pick(rng, COLOR_WORDS[color]))
    if omit == "shape":
        words.append(GENERIC_WORDS[0] if plain else _pick(rng, GENERIC_WORDS))
    else:
        words.append(SHAPE_WORDS[shape][0] if plain else _pick(rng, SHAPE_WORDS[shape]))
    return with_article(" ".join(words))


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def make_captions(
    colors: Sequence[str],
    shapes: Sequence[str],
    sizes: Sequence[str],
    positions: Sequence[str],
    background: str,
    rng: np.random.Generator,
    omit: str | None = None,
) -> list[str]:
    """Write four captions for one scene; the first is the plain form ("a red circle").

    Args:
        colors, shapes, sizes, positions: One entry per object, names from
            :mod:`course_utils.data.shapes`.
        background: Background colour name.
        rng: Generator that picks templates and synonyms.
        omit: None, ``"color"`` or ``"shape"``: the attribute every caption
            leaves out (a vague caption).

    Returns:
        Four lower-case strings without a final full stop.
    """
    if omit not in OMIT_CHOICES:
        raise ValueError(f"omit must be one of {OMIT_CHOICES}, got {omit!r}.")
    objects = list(zip(colors, shapes, sizes, positions, strict=True))
    count = len(objects)
    bg = _pick(rng, BACKGROUND_WORDS[background])

    plain = _join([_noun_phrase(c, s, z, rng, omit, plain=True) for c, s, z, _ in objects])

    detailed = _join(
        [f"{_noun_phrase(c, s, z, rng, omit, plain=False)} {_pick(rng, _WHERE[p])}"
         for c, s, z, p in objects]
    )

    described = [_noun_phrase(c, s, z, rng, omit, plain=False) for c, s, z, _ in objects]
    if count == 1:
        # "there is one red round shape": the count word replaces the article.
        phrase = described[0].split(" ", 1)[1]
        counted = f"there is one {phrase} on {with_article(bg)} background"
    else:
        counted = (
            f"there are {_COUNT_WORDS[count]} shapes on {with_article(bg)} background: "
            f"{_join(described)}"
        )

    # Place first, object second: the same facts in another word order.
    fronted = "; ".join(
        f"{_pick(rng, _WHERE[p])} there is {_noun_phrase(c, s, z, rng, omit, plain=False)}"
        for c, s, z, p in objects
    )
    return [plain, detailed, counted, fronted]
