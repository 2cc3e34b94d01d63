import matplotlib

matplotlib.use("Agg")

import re

import numpy as np
import pytest
from PIL import Image

from course_utils.images import (
    check_multiple_of,
    check_prompts,
    check_strength,
    image_grid,
    prepare_image,
)
from course_utils.masks import check_mask, circle_mask, feather_mask, rectangle_mask
from course_utils.plotting import show_grid, show_images


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


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_prepare_image_scales_16_bit(mode):
    for value, expected in ((0, 0), (30000, 117), (65535, 255)):
        with pytest.warns(UserWarning, match=f"Converted image from mode '{mode}' to 'RGB' after scaling"):
            image = prepare_image(Image.new(mode, (8, 8), value), (8, 8))
        assert image.getpixel((0, 0)) == (expected, expected, expected)


def test_prepare_image_rejects_ambiguous_modes():
    with pytest.raises(ValueError, match=r"mode 'F' \(32-bit float pixels\).*Image\.fromarray"):
        prepare_image(Image.new("F", (8, 8), 0.5), (8, 8))
    with pytest.raises(ValueError, match=r"mode 'I' \(32-bit integer pixels\).*// 257"):
        prepare_image(Image.new("I", (8, 8), 30000), (8, 8))


def test_prepare_image_composites_palette_alpha():
    transparent = Image.new("PA", (8, 8), (0, 0))
    with pytest.warns(UserWarning, match="'PA'"):
        image = prepare_image(transparent, (8, 8))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_prepare_image_unconvertible_mode():
    with pytest.raises(ValueError, match=r"PIL cannot convert an image of mode 'La' to RGB.*convert\('LA'\)"):
        prepare_image(Image.new("La", (8, 8)), (8, 8))


def test_prepare_image_rejects_int_size():
    with pytest.raises(TypeError, match=r"got the single number 64; for a square image pass \(64, 64\)"):
        prepare_image(Image.new("RGB", (8, 8)), 64)


@pytest.mark.parametrize(
    ("size", "error", "message"),
    [
        ((-8, 64), ValueError, r"Image size -8x64 is not positive"),
        ((0, 64), ValueError, r"Image size 0x64 is not positive"),
        ((64, 64, 3), ValueError, r"got 3 values \(64, 64, 3\).*array\.shape\[1\], array\.shape\[0\]"),
        (64, TypeError, r"got the single number 64"),
        ("64x64", TypeError, r"got str \('64x64'\)"),
        ((True, 8), TypeError, r"two numbers of pixels, got \(True, 8\)"),
        ((float("nan"), 64), ValueError, r"finite numbers of pixels, got \(nan, 64\)"),
    ],
)
def test_check_multiple_of_rejects_bad_size(size, error, message):
    with pytest.raises(error, match=message):
        check_multiple_of(size)


def test_check_multiple_of_rejects_bad_multiple():
    with pytest.raises(ValueError, match="multiple must be a positive integer, got 0"):
        check_multiple_of((64, 64), multiple=0)
    with pytest.raises(TypeError, match="multiple must be a positive integer, got 8.0"):
        check_multiple_of((64, 64), multiple=8.0)


def test_check_strength_accepts_one_step():
    assert check_strength(0.05, 20) == 0.05
    assert check_strength(1, 1) == 1.0
    assert isinstance(check_strength(1, 1), float)


def test_check_strength_rejects_zero_steps():
    with pytest.raises(ValueError, match=r"strength=0\.04 with num_inference_steps=20 runs int\(20 \* 0\.04\) = 0 "
                                         r"denoising steps.*strength >= 0\.05 \(about 1/20\).*"
                                         r"num_inference_steps >= 25.*\(0, 1\]"):
        check_strength(0.04, 20)


@pytest.mark.parametrize("strength", [0.0, -0.5, 1.5, float("nan")])
def test_check_strength_rejects_out_of_range(strength):
    with pytest.raises(ValueError, match=r"strength must lie in \(0, 1\], got .* with num_inference_steps=20.*0\.05"):
        check_strength(strength, 20)


@pytest.mark.parametrize(
    ("strength", "steps", "message"),
    [
        (True, 20, r"strength must be a number in \(0, 1\], got bool \(True\)"),
        ("0.5", 20, r"strength must be a number in \(0, 1\], got str \('0\.5'\)"),
        (None, 20, r"strength must be a number in \(0, 1\], got NoneType"),
        (0.5, 20.0, r"num_inference_steps must be a positive integer, got 20\.0"),
        (0.5, True, r"num_inference_steps must be a positive integer, got True"),
    ],
)
def test_check_strength_rejects_wrong_types(strength, steps, message):
    with pytest.raises(TypeError, match=message):
        check_strength(strength, steps)


@pytest.mark.parametrize("steps", [0, -3])
def test_check_strength_rejects_no_steps(steps):
    with pytest.raises(ValueError, match=f"num_inference_steps must be a positive integer, got {steps}"):
        check_strength(0.5, steps)


def test_check_strength_suggestions_run():
    # 49 * (1 / 49) is 0.9999999999999999 in floating point, so 1/n itself can run no step.
    for steps in range(1, 201):
        with pytest.raises(ValueError, match="= 0 denoising steps") as error:
            check_strength(0.5 / steps, steps)
        suggested = float(re.search(r"strength >= (\S+) \(about", str(error.value)).group(1))
        assert check_strength(suggested, steps) == suggested
        assert 1 / steps <= suggested < 1.01 / steps
        more_steps = int(re.search(r"num_inference_steps >= (\d+)", str(error.value)).group(1))
        assert check_strength(0.5 / steps, more_steps) == 0.5 / steps
        with pytest.raises(ValueError, match="= 0 denoising steps"):
            check_strength(0.5 / steps, more_steps - 1)


# diffusers 0.42's DPMSolverMultistepScheduler.set_timesteps passes a torch tensor to np.array,
# which numpy 2 flags with this DeprecationWarning. It comes from the library, not from course_utils.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_check_strength_matches_diffusers():
    from types import SimpleNamespace

    import diffusers

    from course_utils.registry import model_source

    scheduler = diffusers.DPMSolverMultistepScheduler.from_pretrained(
        model_source("sd_text2img", profile="mini"), subfolder="scheduler")
    pipeline = SimpleNamespace(scheduler=scheduler)
    for steps in (1, 3, 20, 25, 49):
        scheduler.set_timesteps(steps)
        for strength in (0.01, 0.02, 1 / 49, 0.04, 0.05, 0.3, 0.334, 1.0):
            _, denoising_steps = diffusers.StableDiffusionImg2ImgPipeline.get_timesteps(
                pipeline, steps, strength, "cpu")
            if denoising_steps == 0:
                with pytest.raises(ValueError, match="= 0 denoising steps"):
                    check_strength(strength, steps)
            else:
                assert check_strength(strength, steps) == strength


def test_prompt_errors_name_prompts():
    with pytest.raises(TypeError, match=r"prompts\[0\] is int \(1\), not str.*for s in prompts"):
        check_prompts([1, 2])
    with pytest.raises(TypeError, match=r"prompts is bytes \(b'ab'\), not str\. Decode it first"):
        check_prompts(b"ab")
    with pytest.raises(TypeError, match=r"prompts\[0\] is bytes .*s\.decode\('utf-8'\)"):
        check_prompts([b"ab"])


def test_empty_prompt_is_one_prompt():
    assert check_prompts("") == [""]
    assert check_prompts([""]) == [""]


def test_check_mask_zero_one_values():
    mask = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8))
    for allow_soft in (False, True):
        with pytest.raises(ValueError, match=r"only 0 and 1.*0 \(keep\) and 255 \(repaint\).*v \* 255"):
            check_mask(mask, allow_soft=allow_soft)
    fixed = mask.point(lambda v: v * 255)
    assert np.asarray(check_mask(fixed)).max() == 255


def test_check_mask_array_names_conversion():
    array = np.zeros((8, 8), dtype=bool)
    array[2:6, 2:6] = True
    with pytest.raises(TypeError, match=r"numpy array of shape \(8, 8\) and dtype bool.*Image\.fromarray"):
        check_mask(array)
    # The conversion that the message suggests for a boolean array gives a valid mask.
    mask = check_mask(Image.fromarray(array.astype("uint8") * 255, mode="L"))
    assert np.asarray(mask).sum() == 255 * 16


def test_mask_builders_reject_non_numbers():
    with pytest.raises(TypeError, match=r"box must contain numbers of pixels, got 'a' in box \(0, 'a', 8, 8\)"):
        rectangle_mask((64, 64), (0, "a", 8, 8))
    with pytest.raises(TypeError, match="got None in box"):
        rectangle_mask((64, 64), (0, None, 8, 8))
    with pytest.raises(TypeError, match=r"radius must be a finite, positive number of pixels, got str \('4'\)"):
        circle_mask((64, 64), (32, 32), "4")
    with pytest.raises(TypeError, match=r"got NoneType \(None\)"):
        circle_mask((64, 64), (32, 32), None)
    with pytest.raises(TypeError, match=r"radius must be a finite number of pixels, 0 or more, got str"):
        feather_mask(rectangle_mask((32, 32), (8, 8, 24, 24)), "2")


def test_mask_builders_reject_bad_values():
    with pytest.raises(ValueError, match=r"center must be \(x, y\) in pixels, got \(32, 32, 1\)"):
        circle_mask((64, 64), (32, 32, 1), 4)
    with pytest.raises(ValueError, match="finite, positive number of pixels, got nan"):
        circle_mask((64, 64), (32, 32), float("nan"))
    with pytest.raises(ValueError, match="finite numbers of pixels, got inf in box"):
        rectangle_mask((64, 64), (0, 0, float("inf"), 8))
    hard = rectangle_mask((32, 32), (8, 8, 24, 24))
    for radius in (float("nan"), float("inf"), -1):
        with pytest.raises(ValueError, match="radius must be a finite number of pixels, 0 or more"):
            feather_mask(hard, radius)


def test_image_grid_rejects_bad_layout():
    tiles = [Image.new("RGB", (10, 10))] * 3
    with pytest.raises(ValueError, match="columns must be at least 1, got 0; pass None"):
        image_grid(tiles, columns=0)
    with pytest.raises(TypeError, match="columns must be a whole number of images per row, or None, got 2.5"):
        image_grid(tiles, columns=2.5)
    with pytest.raises(ValueError, match="pad must be 0 or more pixels, got -10"):
        image_grid(tiles, pad=-10)
    with pytest.raises(TypeError, match="pad must be a whole number of pixels, got 1.5"):
        image_grid(tiles, pad=1.5)
    assert image_grid(tiles, columns=None, pad=0).size == (20, 20)


def test_image_grid_scales_16_bit_tiles():
    grid = image_grid([Image.new("I;16", (4, 4), 30000)], pad=0)
    assert grid.getpixel((0, 0)) == (117, 117, 117)
    with pytest.raises(ValueError, match=r"images\[1\] has mode 'F'"):
        image_grid([Image.new("RGB", (4, 4)), Image.new("F", (4, 4), 0.5)])


def test_show_images_rejects_bad_input():
    tiles = [Image.new("RGB", (4, 4))] * 3
    with pytest.raises(ValueError, match=r"Image 1 has shape \(3, 4, 6\).*transpose\(1, 2, 0\)"):
        show_images([tiles[0], np.zeros((3, 4, 6), dtype=np.uint8)])
    with pytest.raises(TypeError, match=r"titles is the string 'abc'; pass a list .* such as \['abc'\]"):
        show_images(tiles, titles="abc")
    with pytest.raises(ValueError, match="columns must be at least 1, got 0"):
        show_images(tiles, columns=0)
    with pytest.raises(TypeError, match="columns must be a whole number"):
        show_images(tiles, columns=1.5)
