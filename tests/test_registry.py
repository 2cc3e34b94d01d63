from pathlib import Path

import pytest
from transformers import AutoConfig

from course_utils.registry import MODELS, ModelNotAvailableError, load_kwargs, model_source

EXPECTED_ROLES = {
    "text_encoder", "image_encoder", "audio_encoder", "clip",
    "blip_caption", "blip_vqa", "blip_itm", "sd_text2img", "sd_inpaint",
}


def test_every_role_registered():
    assert set(MODELS) == EXPECTED_ROLES


def test_full_ids_are_hub_ids():
    for spec in MODELS.values():
        owner, _, name = spec.full_id.partition("/")
        assert owner, spec.full_id
        assert name, spec.full_id
        assert model_source(spec.role, "full") == spec.full_id


def test_full_ids_match_course_choices():
    assert model_source("clip", "full") == "openai/clip-vit-base-patch32"
    assert model_source("sd_text2img", "full") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert model_source("sd_inpaint", "full") == "stable-diffusion-v1-5/stable-diffusion-inpainting"
    assert model_source("text_encoder", "full") == "sentence-transformers/all-MiniLM-L6-v2"


def test_mini_text_encoder_is_packaged_minilm():
    folder = Path(model_source("text_encoder", "mini"))
    assert (folder / "model.safetensors").exists()
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "bert"
    assert config.hidden_size == 384
    assert config.num_hidden_layers == 6


def test_missing_mini_model_raises_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="not available in the mini profile yet"):
        model_source("clip", "mini")


def test_unknown_role_lists_roles():
    with pytest.raises(KeyError, match="Unknown model role 'bert'. Known roles: text_encoder"):
        model_source("bert")


def test_inpaint_full_uses_fp16_safetensors_variant():
    import torch

    assert load_kwargs("sd_inpaint", "full", dtype=torch.float16) == {"dtype": torch.float16, "variant": "fp16"}
    assert load_kwargs("sd_inpaint", "mini", dtype=torch.float32) == {"dtype": torch.float32}
