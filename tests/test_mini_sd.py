"""The shipped mini Stable Diffusion meets its bars, runs in all three pipelines and retrains from the script.

The inpainting bars belong to mini-sd-inpainting (tests/test_mini_sd_inpainting.py).
"""

import itertools
import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from course_utils.paths import models_dir
from course_utils.registry import model_source

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import sd_tasks  # noqa: E402
import train_mini_sd  # noqa: E402

FOLDER = models_dir() / "mini-sd"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(model_source("sd_text2img", profile="mini"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def judge():
    return sd_tasks.ClipJudge(Path(model_source("clip", profile="mini")))


class _Records(logging.Handler):
    """Collects records of the diffusers and transformers loggers, which do not propagate to the root."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def library_warnings():
    handler = _Records()
    loggers = [logging.getLogger("diffusers"), logging.getLogger("transformers")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.messages
    for logger in loggers:
        logger.removeHandler(handler)


def test_text2img_seeds_are_distinct():
    cases = sd_tasks.text2img_cases()
    seeds = [seed for _, seed in cases]
    assert len(cases) == len(sd_tasks.classes()) * sd_tasks.TEXT2IMG_IMAGES_PER_PROMPT
    assert len(set(seeds)) == len(seeds)
    assert {target for target, _ in cases} == set(sd_tasks.classes())


@pytest.fixture(scope="module")
def text2img_metrics(pipe, judge):
    return sd_tasks.evaluate_text2img(pipe, judge)


def test_text2img_judge_reads_drawn_scenes(text2img_metrics):
    # The bar counts the judge's mistakes too, so the judge must read drawn scenes of the same classes.
    assert text2img_metrics["text2img_images"] == 96
    assert text2img_metrics["text2img_judge_accuracy_on_drawn_scenes"] >= 0.9, text2img_metrics


def test_vae_round_trip_keeps_shapes_readable(text2img_metrics):
    # Every generated image passes the decoder, so its blur caps the text-to-image bar. A 600-step
    # decoder left the judge 49% on these round trips, and the shipped 7,600-step one leaves 75%.
    assert text2img_metrics["text2img_judge_accuracy_on_vae_round_trips"] >= 0.65, text2img_metrics


def test_lower_guidance_draws_truer_colours(pipe, judge, text2img_metrics):
    # The card and notebook 07 state that the mini model follows prompts better at guidance 3 than at 7.5.
    row = sd_tasks.evaluate_text2img_guidance(pipe, judge, scales=(3.0,))["text2img_guidance_sweep"][0]
    assert row["accuracy"] > text2img_metrics["text2img_accuracy"] + 0.05, row
    assert row["color_accuracy"] > text2img_metrics["text2img_color_accuracy"], row


def test_text2img_bar(text2img_metrics):
    assert text2img_metrics["text2img_accuracy"] >= sd_tasks.BARS["text2img_accuracy"], text2img_metrics


@pytest.fixture(scope="module")
def img2img_pipe(pipe):
    from diffusers import StableDiffusionImg2ImgPipeline

    return StableDiffusionImg2ImgPipeline.from_pipe(pipe)


@pytest.fixture(scope="module")
def img2img_metrics(img2img_pipe, judge):
    return sd_tasks.evaluate_img2img(img2img_pipe, judge)


def test_img2img_low_strength_keeps_layout(img2img_metrics):
    assert img2img_metrics["img2img_low_layout_iou"] >= sd_tasks.BARS["img2img_low_layout_iou"], img2img_metrics


def test_img2img_layout_iou_falls_with_strength(img2img_metrics):
    assert img2img_metrics["img2img_low_layout_iou"] > img2img_metrics["img2img_high_layout_iou"], img2img_metrics


def test_lower_guidance_keeps_more_layout(img2img_pipe, judge, img2img_metrics):
    # The card and notebook 08 state that guidance drives the low-strength change; this test checks that claim.
    sweep = sd_tasks.evaluate_img2img_guidance(img2img_pipe, judge)["img2img_low_guidance_sweep"]
    ious = [row["layout_iou"] for row in sweep]
    assert ious == sorted(ious, reverse=True), sweep
    assert ious[0] - ious[-1] > 0.1, sweep
    assert sweep[-1]["guidance"] == sd_tasks.GUIDANCE_SCALE
    assert sweep[-1]["layout_iou"] == pytest.approx(img2img_metrics["img2img_low_layout_iou"]), sweep


def test_img2img_high_strength_follows_prompt(img2img_metrics):
    assert img2img_metrics["img2img_high_prompt_accuracy"] >= sd_tasks.BARS["img2img_high_prompt_accuracy"], img2img_metrics


@pytest.mark.parametrize("name", ["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                  "StableDiffusionInpaintPipeline"])
def test_pipeline_loads_without_warnings(name, library_warnings):
    import diffusers
    from PIL import Image

    pipeline = getattr(diffusers, name).from_pretrained(FOLDER)
    pipeline.set_progress_bar_config(disable=True)
    # NOTE: without torchvision, the first pipeline load in a process also logs that
    # transformers' CLIP and SigLIP image processors fall back to PIL. That comes from the
    # environment, not from this model, so it is left out here.
    assert [message for message in library_warnings if "requires torchvision" not in message] == []
    extra = {}
    if name != "StableDiffusionPipeline":
        extra["image"] = Image.new("RGB", (64, 64), (128, 128, 128))
    if name == "StableDiffusionInpaintPipeline":
        extra["mask_image"] = sd_tasks.inpaint_mask()
    image = pipeline("a red circle", num_inference_steps=4, generator=torch.Generator().manual_seed(0), **extra).images[0]
    assert image.size == (64, 64)


def test_generation_is_deterministic(pipe):
    first = pipe("a red circle", num_inference_steps=4, generator=torch.Generator().manual_seed(5),
                 output_type="np").images
    second = pipe("a red circle", num_inference_steps=4, generator=torch.Generator().manual_seed(5),
                  output_type="np").images
    assert (first == second).all()


def test_registry_matches_plain_load(pipe):
    from diffusers import UNet2DConditionModel

    assert Path(model_source("sd_text2img", profile="mini")) == FOLDER
    plain = UNet2DConditionModel.from_pretrained(FOLDER, subfolder="unet").state_dict()
    loaded = pipe.unet.state_dict()
    assert plain.keys() == loaded.keys()
    assert all(torch.equal(plain[key], loaded[key]) for key in plain)


def test_folder_format_and_safety_config():
    files = [path for path in FOLDER.rglob("*") if path.is_file()]
    assert not [path.name for path in files if path.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    assert {"unet", "vae", "text_encoder"} <= {path.parent.name for path in files if path.suffix == ".safetensors"}
    assert sum(path.stat().st_size for path in files) <= 20e6
    index = json.loads((FOLDER / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None]
    assert index["feature_extractor"] == [None, None]
    assert index["requires_safety_checker"] is False
    card = (FOLDER / "README.md").read_text()
    assert "safety_checker" in card
    assert f"num_inference_steps={train_mini_sd.DEFAULT_STEPS}" in card


def test_shipped_scheduler_is_the_scripts():
    # The low-strength bar depends on the step spacing, so the shipped config must be what
    # build_scheduler makes, or a fresh `make models` would ship a different model.
    from diffusers import DPMSolverMultistepScheduler

    shipped = DPMSolverMultistepScheduler.from_pretrained(FOLDER, subfolder="scheduler").config
    # Keys that start with "_" record how a config was made (library version, defaults used), not the schedule.
    built = {key: value for key, value in train_mini_sd.build_scheduler().config.items() if not key.startswith("_")}
    assert {key: shipped[key] for key in built} == built
    assert shipped["use_karras_sigmas"] is True
    assert train_mini_sd.USE_KARRAS_SIGMAS is True


# diffusers 0.42's DPMSolverMultistepScheduler.set_timesteps passes a torch tensor to np.array,
# which numpy 2 flags with this DeprecationWarning. It comes from the library, not from this model.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_low_strength_starts_later_with_karras():
    # The claim on USE_KARRAS_SIGMAS: with 20 steps, strength 0.3 starts far lower than with even
    # spacing, while strength 0.9 starts about as high. The pipeline's own method picks the start.
    from types import SimpleNamespace

    from diffusers import DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline

    def start(scheduler, strength, steps=sd_tasks.NUM_INFERENCE_STEPS):
        scheduler.set_timesteps(steps)
        timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(SimpleNamespace(scheduler=scheduler), steps,
                                                                    strength, "cpu")
        return int(timesteps[0])

    karras = train_mini_sd.build_scheduler()
    even = DPMSolverMultistepScheduler.from_config(karras.config, use_karras_sigmas=False)
    assert start(karras, 0.3) < start(even, 0.3) / 3
    assert abs(start(karras, 0.9) - start(even, 0.9)) < 50


def test_training_script_smoke(tmp_path):
    from diffusers import StableDiffusionPipeline

    metrics = train_mini_sd.main(["--max-steps", "2", "--vae-steps", "2", "--refine-steps", "2", "--decoder-steps", "2",
                                  "--limit", "32", "--no-eval", "--unet-channels", "32,64,64", "--output-dir", str(tmp_path)])
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path)
    # A width other than the default reaches the saved config and the metrics the card reads.
    assert tuple(pipeline.unet.config.block_out_channels) == (32, 64, 64)
    assert metrics["unet_channels"] == [32, 64, 64]
    assert pipeline.scheduler.config.use_karras_sigmas is True
    assert {metrics[f"{stage}_device"] for stage in ("vae", "unet", "refine", "decoder")} == {"cpu"}
    assert metrics["refine_steps"] == 2
    assert [row["step"] for row in metrics["refine_loss_history"]] == [2]
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline("a red circle", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert pipeline.unet.config.cross_attention_dim == pipeline.text_encoder.config.hidden_size
    assert pipeline.unet.config.addition_embed_type == "text"
    # The UNet file stores float16 to halve its size, and from_pretrained still builds float32.
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    assert pipeline.unet.dtype == torch.float32
    # Saved configs must not record where the build machine kept the folder.
    assert not [path for path in tmp_path.glob("*/config.json") if "_name_or_path" in json.loads(path.read_text())]
    # The text encoder is mini-clip's text tower, frozen during UNet training.
    clip_text = train_mini_sd.load_text_encoder(models_dir() / "mini-clip").state_dict()
    saved = pipeline.text_encoder.state_dict()
    assert saved.keys() == clip_text.keys()
    assert all(torch.equal(saved[name], clip_text[name]) for name in saved)


def test_refine_stage_changes_only_the_unet(tmp_path):
    common = ["--max-steps", "2", "--vae-steps", "2", "--decoder-steps", "2", "--limit", "32", "--no-eval",
              "--unet-channels", "16,32,32", "--output-dir", str(tmp_path)]
    train_mini_sd.main([*common, "--refine-steps", "0"])
    files = {path.relative_to(tmp_path): path.read_bytes() for path in tmp_path.rglob("*.safetensors")}
    metrics = train_mini_sd.main([*common, "--stage", "refine", "--refine-steps", "2"])
    changed = {name for name, data in files.items() if (tmp_path / name).read_bytes() != data}
    assert changed == {Path("unet") / "diffusion_pytorch_model.safetensors"}
    assert metrics["refine_swap_captions_below"] == train_mini_sd.SWAP_CAPTIONS_BELOW


def test_decoder_stage_changes_only_the_decoder(tmp_path):
    # The UNet learned from the encoder's latents, so the decoder stage must leave the encoder alone.
    from safetensors.torch import load_file

    common = ["--max-steps", "2", "--vae-steps", "2", "--decoder-steps", "2", "--limit", "32", "--no-eval",
              "--unet-channels", "16,32,32", "--output-dir", str(tmp_path)]
    train_mini_sd.main(common)
    weights = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    before = load_file(weights)
    unet = (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    metrics = train_mini_sd.main([*common, "--stage", "decoder"])
    after = load_file(weights)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, "the decoder stage changed no weight"
    assert all(name.startswith(("decoder.", "post_quant_conv.")) for name in changed), changed
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == unet
    assert metrics["decoder_latent_noise"] == train_mini_sd.DECODER_LATENT_NOISE


def test_refine_stage_needs_a_unet(tmp_path):
    with pytest.raises(FileNotFoundError, match="Run the unet stage first"):
        train_mini_sd.main(["--stage", "refine", "--refine-steps", "2", "--limit", "32", "--no-eval",
                            "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="pass --refine-steps N"):
        train_mini_sd.main(["--stage", "refine", "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--refine-steps must be 0 or more"):
        train_mini_sd.main(["--refine-steps", "-1", "--output-dir", str(tmp_path)])


@pytest.mark.parametrize("swap_below", [0, 500, 1000])
def test_refine_swaps_only_low_noise_captions(monkeypatch, swap_below):
    # Each scene has one caption of its own, so a prompt that is not the scene's caption was swapped in.
    tokenizer = train_mini_sd.load_tokenizer(models_dir() / "mini-clip")
    text_encoder = train_mini_sd.load_text_encoder(models_dir() / "mini-clip")
    own = [f"a {color} circle" for color in ("red", "green", "blue", "yellow", "purple", "orange")]
    generator = torch.Generator().manual_seed(0)
    means, stds = torch.randn((6, 4, 16, 16), generator=generator), torch.full((6, 4, 16, 16), 0.1)
    seen = []
    encode = train_mini_sd.encode_prompts
    loss = train_mini_sd.denoising_loss
    monkeypatch.setattr(train_mini_sd, "encode_prompts", lambda tok, enc, prompts: seen.append(list(prompts))
                        or encode(tok, enc, prompts))
    # Every batch contains the six scenes in order, so a prompt's position names its scene.
    monkeypatch.setattr(train_mini_sd.mini_training, "batch_indices",
                        lambda count, size, generator: itertools.repeat(torch.arange(count)))
    steps = []

    def record(unet, noise_scheduler, weights, clean, noise, timesteps, states):
        steps.append(timesteps.tolist())
        return loss(unet, noise_scheduler, weights, clean, noise, timesteps, states)

    monkeypatch.setattr(train_mini_sd, "denoising_loss", record)
    unet = train_mini_sd.build_unet(text_encoder.config.hidden_size, (16, 32, 32))
    train_mini_sd.refine_unet(unet, tokenizer, text_encoder, (means, stds), [[text] for text in own],
                              steps=6, seed=0, swap_below=swap_below)
    swapped = 0
    for prompts, timesteps in zip(seen, steps, strict=True):
        for scene, (prompt, timestep) in enumerate(zip(prompts, timesteps, strict=True)):
            if prompt == "":
                continue
            if timestep >= swap_below:
                assert prompt == own[scene], (prompt, scene, timestep)
            else:
                swapped += prompt != own[scene]
    # Six scenes give a random caption the scene's own in about one draw of six.
    below = sum(t < swap_below for timesteps in steps for t in timesteps)
    assert (swapped > below / 2) if below else swapped == 0


def test_training_script_rejects_bad_vae_steps(tmp_path):
    with pytest.raises(ValueError, match="--vae-steps must be at least 1"):
        train_mini_sd.main(["--vae-steps", "0", "--output-dir", str(tmp_path)])


def test_unet_channels_option_is_validated(tmp_path):
    assert train_mini_sd.parse_unet_channels("64,128,128") == (64, 128, 128)
    for bad in ("48,96", "48,96,100", "a,b,c", "0,16,16"):
        with pytest.raises(ValueError, match="three positive multiples of 16"):
            train_mini_sd.main(["--unet-channels", bad, "--output-dir", str(tmp_path)])
