"""A labelled image set for zero-shot classification, in both profiles.

Mini: clean single-object captioned shapes, labelled ``"<colour> <shape>"``
(24 classes, e.g. ``"red circle"``). Full: MNIST digits, labelled with the
digit's name (``"zero"`` ... ``"nine"``), a classic zero-shot test for CLIP.
Columns ``image`` (RGB PIL) and ``label`` (ClassLabel) either way. Used by
``notebooks/session2/05_clip.ipynb``.
"""

from course_utils.profiles import get_profile

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def shape_class_names() -> list[str]:
    """Return the 24 mini class names, ``"<colour> <shape>"``, colour-major."""
    from course_utils.data.shapes import COLORS, SHAPES

    return [f"{color} {shape}" for color in COLORS for shape in SHAPES]


def load_zero_shot_set(split: str = "test", num_images: int | None = None, profile: str | None = None):
    """Load labelled images for zero-shot classification.

    Args:
        split: ``"validation"`` or ``"test"`` in mini (shapes), ``"test"`` in full (MNIST).
            ``"train"`` loads too, but in mini those are the scenes mini-clip was trained
            on, so accuracy there is not zero-shot.
        num_images: Keep the first ``num_images`` images; None keeps all
            (mini: the clean single-object scenes of the split, about a third of it).
        profile: ``"mini"`` or ``"full"``; None resolves the active profile.

    Returns:
        ``datasets.Dataset`` with ``image`` (RGB) and ``label`` (ClassLabel).
    """
    from datasets import ClassLabel, Dataset, Features, Image

    from course_utils.data._checks import check_count, check_split

    # Checked here, not by the loader behind the profile, so that the message names this
    # function. MNIST has no validation split. "test" comes first because the message suggests it.
    profile = get_profile(profile)
    check_split(split, ("test", "train") if profile == "full" else ("test", "validation", "train"),
                "load_zero_shot_set")
    if profile == "full":
        from course_utils.data.digits import load_digits

        digits = load_digits(split, profile="full", num_images=num_images)
        digits = digits.cast_column("label", ClassLabel(names=list(DIGIT_NAMES)))
        return digits.cast_column("image", Image(mode="RGB"))

    from course_utils.data.shapes import load_captioned_shapes

    names = shape_class_names()
    scenes = load_captioned_shapes(split, profile="mini")
    keep = [i for i, (count, corruption) in enumerate(zip(scenes["count"], scenes["corruption"], strict=True))
            if count == 1 and corruption == "none"]
    count = check_count(num_images, len(keep), "num_images", f"the clean single-object {split!r} shapes")
    chosen = scenes.select(keep[:count])
    labels = [names.index(f"{c[0]} {s[0]}") for c, s in zip(chosen["colors"], chosen["shapes"], strict=True)]
    features = Features({"image": Image(mode="RGB"), "label": ClassLabel(names=names)})
    return Dataset.from_dict({"image": chosen["image"], "label": labels}, features=features)
