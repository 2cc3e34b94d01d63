"""Tests for the captioned-shapes loader (mini) and its Flickr8k adapter (full)."""

import io
import re

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from course_utils.data import load_captioned_shapes
from course_utils.data import shapes as shapes_module
from course_utils.data.shape_captions import COLOR_WORDS, SHAPE_WORDS
from course_utils.data.shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    SPLIT_SIZES,
    adapt_flickr8k,
    label_rule,
    render_scene,
)

COMMON_COLUMNS = {"image", "captions", "caption", "label"}


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def train():
    return load_captioned_shapes("train", num_images=300, profile="mini")


def test_constants_name_six_colors_and_four_shapes():
    assert COLORS == ("red", "green", "blue", "yellow", "purple", "orange")
    assert SHAPES == ("circle", "square", "triangle", "star")


def test_columns_and_image_format(train):
    assert set(train.column_names) >= COMMON_COLUMNS
    assert {"colors", "shapes", "positions", "count", "background"} <= set(train.column_names)
    assert isinstance(train.features["label"], ClassLabel)
    assert train.features["label"].names == ["no", "yes"]
    for row in train.select(range(20)):
        assert row["image"].mode == "RGB"
        assert row["image"].size == (64, 64)
        assert len(row["captions"]) >= 3
        assert len(set(row["captions"])) >= 3, row["captions"]
        assert row["caption"] == row["captions"][0]
        assert row["count"] == len(row["colors"]) == len(row["shapes"]) == len(row["positions"])


def test_image_size_argument():
    ds = load_captioned_shapes("test", num_images=2, image_size=32, profile="mini")
    assert ds[0]["image"].size == (32, 32)


def test_default_split_size():
    assert SPLIT_SIZES == {"train": 4000, "validation": 500, "test": 500}
    assert len(load_captioned_shapes("validation", profile="mini")) == 500


def test_same_seed_gives_byte_identical_images():
    first = load_captioned_shapes("test", num_images=8, seed=3, profile="mini")
    shapes_module._generate.cache_clear()  # force a fresh draw, not the cached Dataset
    second = load_captioned_shapes("test", num_images=8, seed=3, profile="mini")
    other = load_captioned_shapes("test", num_images=8, seed=4, profile="mini")
    assert [png_bytes(r["image"]) for r in first] == [png_bytes(r["image"]) for r in second]
    assert first["captions"] == second["captions"]
    assert [png_bytes(r["image"]) for r in first] != [png_bytes(r["image"]) for r in other]


def test_first_images_do_not_depend_on_num_images():
    short = load_captioned_shapes("train", num_images=5, profile="mini")
    long = load_captioned_shapes("train", num_images=12, profile="mini")
    assert [png_bytes(r["image"]) for r in short] == [png_bytes(r["image"]) for r in long.select(range(5))]


def test_splits_do_not_overlap():
    images = {
        split: {png_bytes(r["image"]) for r in load_captioned_shapes(split, num_images=100, profile="mini")}
        for split in ("train", "validation", "test")
    }
    assert not images["train"] & images["validation"]
    assert not images["train"] & images["test"]
    assert not images["validation"] & images["test"]


def test_labels_follow_the_rule_and_are_balanced(train):
    labels = train["label"]
    assert labels == [label_rule(c, s) for c, s in zip(train["colors"], train["shapes"], strict=True)]
    assert 0.4 < np.mean(labels) < 0.6


def test_mix_of_counts_vague_captions_and_corruptions(train):
    counts = np.array(train["count"])
    assert set(counts) == {1, 2, 3}
    assert np.mean(counts == 1) > 0.4  # single objects for captioning and text-to-image
    assert 0.15 < np.mean(train["vague_caption"]) < 0.45
    assert set(train["corruption"]) == {"none", "occluded", "faded"}


def test_captions_name_color_and_shape(train):
    for row in train:
        color_words = [w for c in row["colors"] for w in COLOR_WORDS[c]]
        shape_words = [w for s in row["shapes"] for w in SHAPE_WORDS[s]]
        for caption in row["captions"]:
            has_color = any(re.search(rf"\b{w}\b", caption) for w in color_words)
            has_shape = any(re.search(rf"\b{w}\b", caption) for w in shape_words)
            if row["vague_caption"]:
                assert not has_color or not has_shape, caption  # one is left out
            else:
                assert has_color, caption
                assert has_shape, caption
    clear_single = next(r for r in train if r["count"] == 1 and not r["vague_caption"])
    assert clear_single["caption"] == f"a {clear_single['colors'][0]} {clear_single['shapes'][0]}".replace(
        "a orange", "an orange"
    )


def _object_mask(image, background_rgb):
    pixels = np.asarray(image, dtype=float)
    return np.abs(pixels - np.array(background_rgb)).sum(axis=2) > 120


def test_single_objects_sit_in_the_named_cell(train):
    rows = [r for r in train if r["count"] == 1 and r["corruption"] == "none"][:40]
    assert len(rows) == 40
    for row in rows:
        image = row["image"]
        background = np.median(np.asarray(image).reshape(-1, 3), axis=0)
        ys, xs = np.nonzero(_object_mask(image, background))
        assert len(xs) > 10, row["caption"]
        col, line = int(xs.mean() * 3 // 64), int(ys.mean() * 3 // 64)
        assert POSITIONS[line * 3 + col] == row["positions"][0], row["captions"][1]


def test_render_scene_red_circle():
    image = render_scene("red", "circle", background="white", image_size=64)
    pixels = np.asarray(image, dtype=int)
    red, green, blue = pixels[32, 32]
    assert red > 180
    assert green < 80
    assert blue < 80
    assert pixels[2, 2].min() > 200  # corner is white background
    # A circle leaves the corners of its bounding box empty; a square fills them.
    square = np.asarray(render_scene("red", "square", background="white"), dtype=int)
    assert _object_mask(square, (240, 240, 240)).sum() != _object_mask(pixels, (240, 240, 240)).sum()


def test_render_scene_several_objects():
    image = render_scene(["red", "blue"], ["circle", "star"], positions=["left", "right"], sizes="small")
    pixels = np.asarray(image, dtype=int)
    left, right = pixels[:, :21], pixels[:, 43:]
    assert (left[..., 0] - left[..., 2]).max() > 100  # red on the left
    assert (right[..., 2] - right[..., 0]).max() > 100  # blue on the right


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"colors": "pink", "shapes": "circle"}, "Unknown color 'pink'; choose from red"),
        ({"colors": "red", "shapes": "hexagon"}, "Unknown shape 'hexagon'"),
        ({"colors": ["red", "blue"], "shapes": "circle", "positions": ["left", "left"]}, "repeat a cell"),
        ({"colors": "red", "shapes": "circle", "background": "pink"}, "Unknown background 'pink'"),
        ({"colors": "red", "shapes": "circle", "image_size": 8}, "at least 16 pixels, got 8"),
    ],
)
def test_render_scene_rejects_bad_attributes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_scene(**kwargs)


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown split 'valid' .* train, validation, test"):
        load_captioned_shapes("valid", profile="mini")


def test_too_many_images_is_rejected_with_the_limit():
    with pytest.raises(ValueError, match=r"num_images=50001 is more than the 50000 items"):
        load_captioned_shapes("train", num_images=50_001, profile="mini")
    with pytest.raises(ValueError, match="at least 1, got 0"):
        load_captioned_shapes("train", num_images=0, profile="mini")
    with pytest.raises(TypeError, match="integer or None, got 2.5"):
        load_captioned_shapes("train", num_images=2.5, profile="mini")


def test_bad_seed_and_profile_are_rejected():
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        load_captioned_shapes(seed=-1, profile="mini")
    with pytest.raises(ValueError, match="Unknown profile 'huge'"):
        load_captioned_shapes(profile="huge")


def flickr8k_lookalike(n=6):
    """A local Dataset with the column names and feature types of jxie/flickr8k."""
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(n)]
    images[1] = images[1].convert("L")  # a grayscale photo must come out RGB
    captions = {f"caption_{k}": [f"a child plays in the park ({i}, {k})" for i in range(n)] for k in range(5)}
    captions["caption_3"][2] = "A black dog runs through the grass ."
    captions["caption_0"][4] = "Two puppies sleep on a sofa ."
    captions["caption_1"][5] = "A man in a hotdog costume"  # "hotdog" is not a dog
    features = Features({"image": Image(), **{f"caption_{k}": Value("string") for k in range(5)}})
    return Dataset.from_dict({"image": images, **captions}, features=features)


def test_flickr8k_adapter_gives_the_common_schema():
    ds = adapt_flickr8k(flickr8k_lookalike())
    assert set(ds.column_names) == COMMON_COLUMNS
    mini = load_captioned_shapes("test", num_images=2, profile="mini")
    for column in COMMON_COLUMNS:
        assert ds.features[column] == mini.features[column], column
    assert ds["label"] == [0, 0, 1, 0, 1, 0]
    assert len(ds[0]["captions"]) == 5
    assert ds[2]["captions"][3] == "A black dog runs through the grass ."
    assert ds[0]["caption"] == ds[0]["captions"][0]
    assert all(row["image"].mode == "RGB" for row in ds)


def test_flickr8k_adapter_subsets_and_checks_the_count():
    assert len(adapt_flickr8k(flickr8k_lookalike(), num_images=3, seed=1)) == 3
    with pytest.raises(ValueError, match=r"num_images=7 is more than the 6 items in the 'test' split"):
        adapt_flickr8k(flickr8k_lookalike(), num_images=7, split="test")


def test_flickr8k_adapter_reports_missing_columns():
    raw = flickr8k_lookalike().remove_columns(["caption_4"])
    with pytest.raises(ValueError, match=r"is missing the columns \['caption_4'\]"):
        adapt_flickr8k(raw)


def test_formatting_a_result_leaves_the_cache_alone():
    first = load_captioned_shapes("test", num_images=3, profile="mini")
    first.set_format("numpy")
    again = load_captioned_shapes("test", num_images=3, profile="mini")
    assert again.format["type"] is None
    assert again[0]["image"].mode == "RGB"


def test_full_profile_loads_only_the_requested_flickr8k_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return flickr8k_lookalike()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_captioned_shapes("validation", num_images=4, profile="full")
    assert calls == [("jxie/flickr8k", {"split": "validation"})]
    assert set(ds.column_names) == COMMON_COLUMNS
    assert len(ds) == 4
