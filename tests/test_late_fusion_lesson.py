"""Check the late-fusion lesson's claim on the shipped mini models: fusion beats each modality.

This repeats notebook 04's pipeline with the same sizes, seeds and helpers (MiniLM
caption embeddings, mini-clip image embeddings, one logistic probe per modality,
the weight and thresholds chosen on validation) and scores the held-out test split.
"""

import numpy as np
import pytest
import torch

from course_utils.data import load_captioned_shapes
from course_utils.fusion import choose_fusion_weight, choose_threshold, late_fusion
from course_utils.metrics import binary_metrics
from course_utils.probes import fit_probe
from course_utils.registry import model_source

# The notebook's knobs.
SIZES = {"train": 1500, "validation": 500, "test": 500}
CRITERION = "f1"


@pytest.fixture(scope="module")
def probabilities():
    from sentence_transformers import SentenceTransformer
    from transformers import CLIPModel, CLIPProcessor

    splits = {name: load_captioned_shapes(name, num_images=size) for name, size in SIZES.items()}
    text_model = SentenceTransformer(model_source("text_encoder", profile="mini"), device="cpu")
    clip_source = model_source("clip", profile="mini")
    clip = CLIPModel.from_pretrained(clip_source).eval()
    processor = CLIPProcessor.from_pretrained(clip_source)

    def image_features(split):
        inputs = processor(images=[image.convert("RGB") for image in split["image"]], return_tensors="pt")
        with torch.inference_mode():
            features = clip.get_image_features(**inputs).pooler_output
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    text_x = {name: text_model.encode(split["caption"], normalize_embeddings=True, batch_size=64)
              for name, split in splits.items()}
    image_x = {name: image_features(split) for name, split in splits.items()}
    y = {name: np.array(split["label"]) for name, split in splits.items()}
    text_probe = fit_probe(text_x["train"], y["train"], seed=0)
    image_probe = fit_probe(image_x["train"], y["train"], seed=0)
    p_text = {name: text_probe.predict_proba(text_x[name])[:, 1] for name in splits}
    p_image = {name: image_probe.predict_proba(image_x[name])[:, 1] for name in splits}
    return p_text, p_image, y


def test_late_fusion_beats_each_modality(probabilities):
    p_text, p_image, y = probabilities
    weight, _ = choose_fusion_weight(p_text["validation"], p_image["validation"], y["validation"])
    assert 0.0 < weight < 1.0, f"validation picked w = {weight}, so late fusion is a single modality"
    p_fused = {name: late_fusion([p_text[name], p_image[name]], [weight, 1 - weight]) for name in p_text}
    scores = {}
    for name, p in [("text", p_text), ("image", p_image), ("late", p_fused)]:
        threshold = choose_threshold(y["validation"], p["validation"], CRITERION)
        scores[name] = binary_metrics(y["test"], p["test"], threshold)
    for metric in ("accuracy", "f1", "roc_auc"):
        best_single = max(scores["text"][metric], scores["image"][metric])
        assert scores["late"][metric] > best_single, (metric, scores)
