import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image

from course_utils.images import (
    check_multiple_of,
    check_prompts,
    image_grid,
    prepare_image,
    show_grid,
    show_images,
)
from course_utils.masks import check_mask, circle_mask, feather_mask, rectangle_mask


def test_rectangle_mask_white_inside_box():
    mask = np.asarray(rectangle_mask((8, 6), (2, 1, 5, 4)))
    assert mask.shape == (6, 8)
    assert mask[1:4, 2:5].min() == 255
    assert mask.sum() == 255 * 9


def test_circle_mask_area_close_to_pi_r_squared():
    mask = np.asarray(circle_mask((64, 64), (32, 32), 10)) > 0
    assert abs(mask.sum() - np.pi * 100) < 20
    assert mask[32, 32]
    assert not mask[0, 0]


def test_mask_outside_image_rejected():
    with pytest.raises(ValueError, match=r"box \(70, 0, 80, 10\) lies outside the 64x64 image"):
        rectangle_mask((64, 64), (70, 0, 80, 10))
    with pytest.raises(ValueError, match=r"center \(-1, 5\) lies outside the 64x64 image"):
        circle_mask((64, 64), (-1, 5), 4)


def test_empty_box_rejected():
    with pytest.raises(ValueError, match="is empty"):
        rectangle_mask((64, 64), (10, 10, 10, 20))


def test_invalid_size_rejected():
    with pytest.raises(ValueError, match="size must be"):
        rectangle_mask((64.5, 64), (0, 0, 4, 4))


def test_feathering_softens_edge_only():
    hard = rectangle_mask((32, 32), (8, 8, 24, 24))
    soft = np.asarray(feather_mask(hard, 2))
    assert soft[16, 16] == 255
    assert soft[0, 0] == 0
    assert 0 < soft[8, 16] < 255


def test_check_mask_size_mismatch():
    with pytest.raises(ValueError, match="mask is 32x32 but the image is 64x64"):
        check_mask(rectangle_mask((32, 32), (0, 0, 8, 8)), Image.new("RGB", (64, 64)))


def test_check_mask_non_binary_rejected():
    soft = feather_mask(rectangle_mask((32, 32), (8, 8, 24, 24)), 2)
    with pytest.raises(ValueError, match="mask has grey values"):
        check_mask(soft)
    assert check_mask(soft, allow_soft=True) is soft


def test_check_mask_wrong_mode():
    with pytest.raises(ValueError, match="mask has mode 'RGB'"):
        check_mask(Image.new("RGB", (8, 8), "white"))


def test_check_mask_all_black():
    with pytest.raises(ValueError, match="nothing to repaint"):
        check_mask(Image.new("L", (8, 8), 0))


def test_check_mask_too_faint_to_repaint():
    with pytest.raises(ValueError, match="peaks at 100 of 255"):
        check_mask(Image.new("L", (8, 8), 100), allow_soft=True)


def test_check_mask_rejects_array_image():
    with pytest.raises(TypeError, match="image must be a PIL image"):
        check_mask(rectangle_mask((8, 8), (0, 0, 4, 4)), np.zeros((8, 8, 3), dtype=np.uint8))


def test_feathering_that_erases_the_mask_rejected():
    tiny = circle_mask((64, 64), (32, 32), radius=2)
    with pytest.raises(ValueError, match="use a smaller radius"):
        feather_mask(tiny, 8)


def test_box_needs_four_numbers():
    with pytest.raises(ValueError, match=r"box must be \(left, top, right, bottom\)"):
        rectangle_mask((64, 64), (0, 0, 8))


def test_numpy_integer_size_accepted():
    mask = circle_mask((np.int64(16), np.int64(16)), (8, 8), radius=4)
    assert mask.size == (16, 16)


def test_circle_covering_no_pixel_rejected():
    with pytest.raises(ValueError, match="too small to cover any pixel"):
        circle_mask((16, 16), (8, 8), radius=0.2)


def test_size_not_multiple_of_8_rejected():
    with pytest.raises(ValueError, match="Image size 101x64 is not divisible by 8; use for example 104x64"):
        check_multiple_of((101, 64))
    assert check_multiple_of((64, 128)) == (64, 128)


def test_prepare_image_converts_and_warns():
    with pytest.warns(UserWarning, match="Converted image from mode 'L' to 'RGB'"):
        image = prepare_image(Image.new("L", (50, 40), 128), (64, 64))
    assert image.mode == "RGB"
    assert image.size == (64, 64)


def test_prepare_image_composites_alpha_on_white():
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    with pytest.warns(UserWarning, match="RGBA"):
        image = prepare_image(transparent, (8, 8))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_prepare_image_rejects_bad_size():
    with pytest.raises(ValueError, match="not divisible by 8"):
        prepare_image(Image.new("RGB", (8, 8)), (30, 30))


def test_empty_prompt_list_rejected():
    with pytest.raises(ValueError, match="The prompt list is empty"):
        check_prompts([])
    assert check_prompts("a red circle") == ["a red circle"]


def test_image_grid_layout():
    tiles = [Image.new("RGB", (10, 10), c) for c in ("red", "green", "blue")]
    grid = image_grid(tiles, columns=2, pad=2)
    assert grid.size == (22, 22)
    assert grid.getpixel((12, 0)) == (0, 128, 0)
    with pytest.raises(ValueError, match="images is empty"):
        image_grid([])


def test_show_images_titles_must_match():
    tiles = [Image.new("RGB", (4, 4))] * 2
    figure = show_images(tiles, titles=["a", "b"])
    assert [ax.get_title() for ax in figure.axes[:2]] == ["a", "b"]
    with pytest.raises(ValueError, match="Got 2 images but 1 titles"):
        show_images(tiles, titles=["a"])


def test_show_grid_labels_rows_and_columns():
    tiles = [Image.new("RGB", (4, 4), color) for color in ["red", "green", "blue", "white", "black", "gray"]]
    figure = show_grid(tiles, row_labels=["circle", "square"], column_labels=["a", "b", "c"])
    assert [ax.get_title() for ax in figure.axes[:3]] == ["a", "b", "c"]
    assert [figure.axes[i].get_ylabel() for i in (0, 3)] == ["circle", "square"]
    assert figure.axes[4].get_images()[0].get_array()[0, 0].tolist() == [0, 0, 0]


def test_show_grid_rejects_a_wrong_image_count():
    tiles = [Image.new("RGB", (4, 4))] * 5
    with pytest.raises(ValueError, match=r"Got 5 images for 2 rows x 3 columns; pass 6 images"):
        show_grid(tiles, row_labels=["x", "y"], column_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="row_labels is empty"):
        show_grid(tiles, row_labels=[], column_labels=["a"])
    with pytest.raises(TypeError, match=r"row_labels is the string 'row'; pass a list of labels, such as \['row'\]"):
        show_grid(tiles[:3], row_labels="row", column_labels=["a"])


def test_show_grid_rejects_channels_first():
    tiles = [Image.new("RGB", (4, 4)), np.zeros((3, 4, 6), dtype=np.uint8)]
    with pytest.raises(ValueError, match=r"Image 1 has shape \(3, 4, 6\).*transpose\(1, 2, 0\)"):
        show_grid(tiles, row_labels=["x"], column_labels=["a", "b"])


def test_show_grid_wraps_long_labels():
    tiles = [Image.new("RGB", (4, 4))] * 2
    long_prompt = "a small purple star in the top left corner on a beige background"
    figure = show_grid(tiles, row_labels=["strength 0.3"], column_labels=[long_prompt, "a red circle"])
    title = figure.axes[0].get_title()
    assert "\n" in title
    assert title.replace("\n", " ") == long_prompt
    assert figure.axes[1].get_title() == "a red circle"
    assert figure.axes[0].get_ylabel() == "strength 0.3"
    # Once drawn, the wrapped title is no wider than its panel.
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    assert axes.title.get_window_extent(renderer).width <= axes.get_window_extent(renderer).width
