"""The shipped mini inpainting model meets the inpainting bars and retrains from its script."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.paths import models_dir
from course_utils.registry import model_source

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import sd_tasks  # noqa: E402
import train_mini_sd_inpainting  # noqa: E402

FOLDER = models_dir() / "mini-sd-inpainting"
BASE = models_dir() / "mini-sd"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionInpaintPipeline

    pipeline = StableDiffusionInpaintPipeline.from_pretrained(model_source("sd_inpaint", profile="mini"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def inpaint_metrics(pipe):
    judge = sd_tasks.ClipJudge(Path(model_source("clip", profile="mini")))
    return sd_tasks.evaluate_inpainting(pipe, judge)


def test_registry_points_at_the_inpainting_folder(pipe):
    assert Path(model_source("sd_inpaint", profile="mini")) == FOLDER
    assert pipe.unet.config.in_channels == 9


def test_inpainting_region_follows_prompt(inpaint_metrics):
    assert inpaint_metrics["inpaint_region_accuracy"] >= sd_tasks.BARS["inpaint_region_accuracy"], inpaint_metrics


def test_inpainting_keeps_outside_of_mask(inpaint_metrics):
    assert inpaint_metrics["inpaint_outside_excess"] <= sd_tasks.BARS["inpaint_outside_excess"], inpaint_metrics


def test_removal_clears_most_of_the_masked_objects(pipe):
    # The lesson removes an object by prompting the background; the card reports the figures.
    removal = sd_tasks.evaluate_removal(pipe)
    assert removal["removal_foreground_left"] < 0.5, removal


def test_components_shared_with_mini_sd():
    from safetensors.torch import load_file

    shared = sorted(path.relative_to(BASE) for path in BASE.glob("*/*") if path.parent.name not in {"unet", "vae"})
    assert {part.parts[0] for part in shared} == {"text_encoder", "tokenizer", "scheduler"}
    for name in shared:
        assert (FOLDER / name).read_bytes() == (BASE / name).read_bytes(), name
    # The inpainting UNet learned from this encoder's latents, so the encoder must be mini-sd's.
    # The decoders may differ: mini-sd's was trained further after this model (see its card).
    assert (FOLDER / "vae" / "config.json").read_bytes() == (BASE / "vae" / "config.json").read_bytes()
    ours, base = (load_file(folder / "vae" / "diffusion_pytorch_model.safetensors") for folder in (FOLDER, BASE))
    assert ours.keys() == base.keys()
    encoder = [name for name in ours if name.startswith(("encoder.", "quant_conv."))]
    assert encoder
    assert all(torch.equal(ours[name], base[name]) for name in encoder)


def test_folder_format_and_safety_config():
    files = [path for path in FOLDER.rglob("*") if path.is_file()]
    assert not [path.name for path in files if path.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    assert sum(path.stat().st_size for path in files) <= 20e6
    index = json.loads((FOLDER / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    assert index["safety_checker"] == [None, None]
    assert index["requires_safety_checker"] is False
    assert "safety_checker" in (FOLDER / "README.md").read_text()


def test_draw_mask_captions_what_it_covers():
    import random

    from course_utils.data.shapes import load_captioned_shapes

    rows = load_captioned_shapes("train", 64, seed=0)
    rng = random.Random(0)
    seen = set()
    for row in rows:
        mask, captions, kind = train_mini_sd_inpainting.draw_mask(row, row["image"], rng)
        seen.add(kind)
        covered = np.asarray(mask) > 127
        assert mask.size == (64, 64)
        assert covered.any()
        if kind == "empty":
            assert captions == train_mini_sd_inpainting.background_captions(row["background"])
            # Nothing of the scene is under an "empty" mask.
            assert not (covered & sd_tasks.foreground_mask(row["image"])).any()
        if kind == "object":
            # The plain caption names exactly one of the scene's objects, as "a red circle".
            assert captions[0].split(" ", 1)[1] in {f"{c} {s}" for c, s in zip(row["colors"], row["shapes"], strict=True)}
        if kind == "full":
            assert covered.all()
    assert seen == set(train_mini_sd_inpainting.MASK_KINDS)


def test_widened_unet_starts_as_the_text2img_unet():
    from diffusers import UNet2DConditionModel

    text2img = UNet2DConditionModel.from_pretrained(BASE, subfolder="unet")
    unet = train_mini_sd_inpainting.build_inpainting_unet(text2img)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    extra = torch.randn(1, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    states = torch.randn(1, 8, text2img.config.cross_attention_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = text2img(latents, 500, encoder_hidden_states=states).sample
        widened = unet(torch.cat([latents, extra], dim=1), 500, encoder_hidden_states=states).sample
    torch.testing.assert_close(widened, expected)


def test_training_script_smoke(tmp_path):
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    metrics = train_mini_sd_inpainting.main(["--max-steps", "2", "--refine-steps", "2", "--limit", "32", "--no-eval",
                                             "--output-dir", str(tmp_path)])
    assert metrics["unet_steps"] == 4
    assert metrics["unet_loss_history"][-1]["step"] == 4
    pipeline = StableDiffusionInpaintPipeline.from_pretrained(tmp_path)
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.unet.config.in_channels == 9
    image = pipeline("a red circle", image=Image.new("RGB", (64, 64), (128, 128, 128)),
                     mask_image=sd_tasks.inpaint_mask(), num_inference_steps=2,
                     generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert not [path for path in tmp_path.glob("*/config.json") if "_name_or_path" in json.loads(path.read_text())]


def test_training_script_needs_a_base_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="train mini-sd first"):
        train_mini_sd_inpainting.main(["--base-dir", str(tmp_path / "missing"), "--output-dir", str(tmp_path)])


def test_resume_matches_single_run(tmp_path):
    # The shipped folder may come from --resume-from; the card promises it equals one uninterrupted run.
    common = ["--limit", "32", "--no-eval"]
    train_mini_sd_inpainting.main(["--max-steps", "2", "--refine-steps", "2", *common, "--output-dir", str(tmp_path / "one")])
    train_mini_sd_inpainting.main(["--max-steps", "2", "--refine-steps", "0", *common, "--output-dir", str(tmp_path / "first")])
    train_mini_sd_inpainting.main(["--resume-from", str(tmp_path / "first"), "--refine-steps", "2", *common,
                                   "--output-dir", str(tmp_path / "resumed")])
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (tmp_path / "one" / weights).read_bytes() == (tmp_path / "resumed" / weights).read_bytes()


def test_resume_options_are_validated(tmp_path):
    with pytest.raises(FileNotFoundError, match="unet/config.json"):
        train_mini_sd_inpainting.main(["--resume-from", str(tmp_path / "missing"), "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="4 input channels"):
        train_mini_sd_inpainting.main(["--resume-from", str(BASE), "--limit", "32", "--no-eval",
                                       "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--refine-steps must be 0 or more"):
        train_mini_sd_inpainting.main(["--refine-steps", "-1", "--output-dir", str(tmp_path)])
