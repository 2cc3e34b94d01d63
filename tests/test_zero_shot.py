import pytest

from course_utils.data.zero_shot import DIGIT_NAMES, load_zero_shot_set, shape_class_names


def test_mini_set_has_clean_single_objects():
    dataset = load_zero_shot_set("test", num_images=20, profile="mini")
    names = dataset.features["label"].names
    assert names == shape_class_names()
    assert len(names) == 24
    assert len(dataset) == 20
    assert dataset[0]["image"].mode == "RGB"


def test_mini_set_is_deterministic():
    first = load_zero_shot_set("validation", num_images=5, profile="mini")
    second = load_zero_shot_set("validation", num_images=5, profile="mini")
    assert first["label"] == second["label"]
    assert [im.tobytes() for im in first["image"]] == [im.tobytes() for im in second["image"]]


def test_too_many_images_rejected():
    with pytest.raises(ValueError, match="num_images=100000 is more than the"):
        load_zero_shot_set("test", num_images=100_000, profile="mini")


def test_digit_names_cover_ten_digits():
    assert len(DIGIT_NAMES) == 10
    assert DIGIT_NAMES[7] == "seven"


@pytest.mark.parametrize(("profile", "valid"), [("mini", "test, validation, train"), ("full", "test, train")])
def test_unknown_split_names_this_loader(profile, valid):
    # The full profile checks the split before it would touch the Hub.
    with pytest.raises(ValueError, match=rf"Unknown split 'val' for load_zero_shot_set\(\); valid splits: {valid}\."):
        load_zero_shot_set("val", profile=profile)
