"""Tests for the digits loader (mini and the MNIST adapter) and the bundled photos."""

import io
from collections import Counter

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from course_utils.data import load_digits, load_sample_photos
from course_utils.data import photos as photos_module
from course_utils.data.digits import adapt_mnist, upsample_scan


def test_digits_columns_and_features():
    train = load_digits("train", profile="mini")
    assert train.column_names == ["image", "label"]
    assert train.features["label"] == ClassLabel(names=[str(d) for d in range(10)])
    image = train[0]["image"]
    assert image.mode == "L"
    assert image.size == (28, 28)


def test_digits_split_is_stratified_and_disjoint():
    train = load_digits("train", profile="mini")
    test = load_digits("test", profile="mini")
    assert len(train) == 1437
    assert len(test) == 360
    test_counts = Counter(test["label"])
    assert set(test_counts) == set(range(10))
    assert min(test_counts.values()) >= 35
    assert max(test_counts.values()) <= 37
    train_pixels = {r["image"].tobytes() for r in train}
    # Distinct scans may upsample to equal images, so allow a handful of coincidences.
    assert sum(r["image"].tobytes() in train_pixels for r in test) <= 3


def test_digits_are_light_on_dark_like_mnist():
    pixels = np.stack([np.asarray(r["image"]) for r in load_digits("test", profile="mini")])
    assert pixels.max() == 255
    assert np.median(pixels[:, 0, :]) == 0  # top row is background
    assert pixels[:, 10:18, 10:18].mean() > 3 * pixels[:, :3, :].mean()


def test_digits_split_is_the_same_on_every_load():
    from course_utils.data import digits

    first = [r["image"].tobytes() for r in load_digits("test", profile="mini")]
    digits._mini_split.cache_clear()
    second = [r["image"].tobytes() for r in load_digits("test", profile="mini")]
    assert first == second


def test_upsample_scan_maps_16_to_255():
    scan = np.zeros((8, 8))
    scan[2:6, 2:6] = 16
    image = upsample_scan(scan)
    assert image.size == (28, 28)
    assert np.asarray(image)[14, 14] == 255
    assert np.asarray(image)[0, 0] == 0


def test_digits_num_images_and_errors():
    assert len(load_digits("test", profile="mini", num_images=10)) == 10
    with pytest.raises(ValueError, match=r"Unknown split 'validation' for load_digits\(\); valid splits: train, test"):
        load_digits("validation", profile="mini")
    with pytest.raises(ValueError, match=r"num_images=361 is more than the 360 items in the mini 'test' digits split"):
        load_digits("test", profile="mini", num_images=361)


def mnist_lookalike(n=5):
    """A local Dataset with the column names and feature types of ylecun/mnist."""
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8), mode="L") for _ in range(n)]
    features = Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})
    return Dataset.from_dict({"image": images, "label": [7, 2, 1, 0, 4][:n]}, features=features)


def test_mnist_adapter_matches_mini_features():
    adapted = adapt_mnist(mnist_lookalike(), num_images=3)
    mini = load_digits("test", profile="mini", num_images=1)
    assert adapted.features == mini.features
    assert adapted["label"] == [7, 2, 1]
    assert adapted[0]["image"].mode == "L"


def test_mnist_adapter_converts_rgb_and_int_labels():
    rgb = PILImage.new("RGB", (28, 28), (255, 0, 0))
    raw = Dataset.from_dict(
        {"image": [rgb], "label": [3]}, features=Features({"image": Image(), "label": Value("int64")})
    )
    adapted = adapt_mnist(raw)
    assert adapted[0]["image"].mode == "L"
    assert adapted.features["label"].int2str(adapted[0]["label"]) == "3"


def test_mnist_adapter_rejects_missing_columns_and_large_counts():
    with pytest.raises(ValueError, match=r"is missing the columns \['label'\]"):
        adapt_mnist(mnist_lookalike().remove_columns("label"))
    with pytest.raises(ValueError, match="num_images=6 is more than the 5 items"):
        adapt_mnist(mnist_lookalike(), num_images=6)


def test_sample_photos_load_offline_as_rgb():
    photos = load_sample_photos()
    assert set(photos) == {"astronaut", "cat", "coffee", "rocket", "camera", "coins", "hubble_deep_field"}
    for name, image in photos.items():
        assert image.mode == "RGB", name
        assert min(image.size) >= 300, name
    assert photos["cat"].size == (451, 300)
    gray = np.asarray(photos["camera"])
    assert (gray[..., 0] == gray[..., 2]).all()
    color = np.asarray(photos["coffee"]).astype(int)
    assert np.abs(color[..., 0] - color[..., 2]).mean() > 10


def test_sample_photos_by_name_and_unknown_name():
    assert list(load_sample_photos(["rocket"])) == ["rocket"]
    with pytest.raises(ValueError, match=r"Unknown photo names \['dog'\]; choose from astronaut"):
        load_sample_photos(["dog"])


def test_sample_photos_missing_file_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(photos_module, "skimage_data_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="Reinstall scikit-image"):
        load_sample_photos(["cat"])
    # A stray PNG with the right name is read like the real one.
    buffer = io.BytesIO()
    PILImage.new("L", (4, 4), 9).save(buffer, format="PNG")
    (tmp_path / "chelsea.png").write_bytes(buffer.getvalue())
    assert load_sample_photos(["cat"])["cat"].getpixel((0, 0)) == (9, 9, 9)


def test_full_profile_loads_mnist_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return mnist_lookalike()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_digits("test", profile="full", num_images=2)
    assert calls == [("ylecun/mnist", {"split": "test"})]
    assert ds["label"] == [7, 2]
