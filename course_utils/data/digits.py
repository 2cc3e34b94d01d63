"""Handwritten digits: scikit-learn's bundled scans (mini) or MNIST (full).

Both profiles return the columns:

- ``image``: PIL grayscale image (mode ``"L"``), 28 x 28 pixels, light
  digit on a dark background as in MNIST.
- ``label``: ClassLabel with names ``"0"`` ... ``"9"``.

Mini uses the 1,797 8 x 8 scans with 4-bit gray levels that ship inside
scikit-learn (``sklearn.datasets.load_digits``, from the UCI "Optical
Recognition of Handwritten Digits" set). Each scan is scaled to 0-255,
upsampled to 20 x 20 with bilinear interpolation and centred in a 28 x 28
black frame, the layout of MNIST digits. A stratified split with a fixed
seed puts 80 % in "train" (1,437) and 20 % in "test" (360). The upsampled
scans look blurrier than MNIST digits, which were scanned at a higher
resolution.

Full loads ``ylecun/mnist`` (60,000 train and 10,000 test images).
"""

from functools import lru_cache

import numpy as np

from course_utils.data._checks import check_count, check_split, require_columns
from course_utils.profiles import get_profile

SPLITS = ("train", "test")
LABEL_NAMES = tuple(str(d) for d in range(10))
IMAGE_SIZE = 28
#: Side of the digit inside the frame; MNIST fits each digit in a 20 x 20 box.
DIGIT_SIZE = 20
TEST_FRACTION = 0.2
#: Seed of the mini train/test split; fixed so the split is the same everywhere.
SPLIT_SEED = 0
FULL_SOURCE = "ylecun/mnist"


def _features():
    from datasets import ClassLabel, Features, Image

    return Features({"image": Image(mode="L"), "label": ClassLabel(names=list(LABEL_NAMES))})


def upsample_scan(scan: np.ndarray):
    """Convert one 8 x 8 scan with values 0-16 to a 28 x 28 PIL image (mode "L") framed like MNIST."""
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(scan, dtype=np.float64) * (255 / 16)), 0, 255).astype(np.uint8)
    digit = Image.fromarray(pixels, mode="L").resize((DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.BILINEAR)
    frame = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    margin = (IMAGE_SIZE - DIGIT_SIZE) // 2
    frame.paste(digit, (margin, margin))
    return frame


@lru_cache(maxsize=2)
def _mini_split(split: str):
    from datasets import Dataset
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    train_idx, test_idx = train_test_split(
        np.arange(len(bunch.target)),
        test_size=TEST_FRACTION,
        stratify=bunch.target,
        random_state=SPLIT_SEED,
    )
    indices = np.sort(train_idx if split == "train" else test_idx)
    return Dataset.from_dict(
        {
            "image": [upsample_scan(bunch.images[i]) for i in indices],
            "label": [int(bunch.target[i]) for i in indices],
        },
        features=_features(),
        split=split,
    )


def load_digits(split: str = "train", profile: str | None = None, num_images: int | None = None):
    """Load handwritten digits as a ``datasets.Dataset`` with ``image`` and ``label``.

    Args:
        split: ``"train"`` or ``"test"``.
        profile: ``"mini"`` or ``"full"``; None resolves the active profile.
        num_images: Keep only the first ``num_images`` rows; None keeps all
            (mini: 1,437 train, 360 test; full: 60,000 and 10,000).

    Returns:
        ``datasets.Dataset`` with the columns in the module docstring.
    """
    check_split(split, SPLITS, "load_digits")
    if get_profile(profile) == "full":
        from datasets import load_dataset

        return adapt_mnist(load_dataset(FULL_SOURCE, split=split), num_images, split)
    ds = _mini_split(split)
    count = check_count(num_images, len(ds), "num_images", f"the mini {split!r} digits split")
    # with_format(None) gives a copy sharing the Arrow data, so set_format on it leaves the cache alone.
    return ds.with_format(None) if count == len(ds) else ds.select(range(count))


def adapt_mnist(raw, num_images: int | None = None, split: str = "train"):
    """Give an MNIST ``Dataset`` (``image``, ``label``) the mini features, keeping the first ``num_images`` rows."""
    require_columns(raw, ("image", "label"), FULL_SOURCE, "The Hub data set may have changed layout.")
    count = check_count(num_images, len(raw), "num_images", f"the {split!r} split of {FULL_SOURCE}")
    if count < len(raw):
        raw = raw.select(range(count))
    raw = raw.select_columns(["image", "label"])
    # Casting changes only the schema: the images are converted to mode "L" when decoded.
    return raw.cast(_features())
