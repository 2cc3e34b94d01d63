"""Checks on the shipped mini ViT (``data/models/mini-vit``) and its training script.

The quality bars use the model as notebook 02 does: load through the
registry, convert the grayscale digits to RGB, run ``ViTImageProcessor`` and
``ViTModel``, and take ``pooler_output`` as the embedding. A logistic-regression
probe fitted on the training digits is scored on the test digits.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.data.digits import load_digits
from course_utils.paths import models_dir
from course_utils.registry import model_source

REPO_ROOT = Path(__file__).resolve().parents[1]
FOLDER = models_dir() / "mini-vit"


@pytest.fixture(scope="module")
def vit():
    from transformers import ViTImageProcessor, ViTModel

    source = model_source("image_encoder", profile="mini")
    return ViTModel.from_pretrained(source).eval(), ViTImageProcessor.from_pretrained(source)


@torch.no_grad()
def encode(vit, images) -> dict[str, np.ndarray]:
    model, processor = vit
    pixels = processor(images=[image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]
    out = model(pixel_values=pixels)
    return {"pooled": out.pooler_output.numpy(), "mean": out.last_hidden_state.mean(dim=1).numpy(),
            "raw": np.stack([np.asarray(image, dtype=np.float32).ravel() / 255 for image in images])}


@pytest.fixture(scope="module")
def features(vit):
    train, test = load_digits("train"), load_digits("test")
    return encode(vit, train["image"]), np.array(train["label"]), encode(vit, test["image"]), np.array(test["label"])


def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(train_x, train_y).score(test_x, test_y))


def test_folder_is_small_safetensors_only():
    names = {path.name for path in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    size_mb = sum(path.stat().st_size for path in FOLDER.iterdir()) / 1e6
    assert size_mb <= 10.0, f"mini-vit is {size_mb:.1f} MB"


def test_registry_and_folder_give_same_outputs(vit):
    from transformers import ViTImageProcessor, ViTModel

    direct = ViTModel.from_pretrained(FOLDER).eval()
    processor = ViTImageProcessor.from_pretrained(FOLDER)
    images = [image.convert("RGB") for image in load_digits("test", num_images=4)["image"]]
    with torch.no_grad():
        expected = direct(**processor(images=images, return_tensors="pt"))
        actual = vit[0](**vit[1](images=images, return_tensors="pt"))
    assert Path(model_source("image_encoder", profile="mini")) == FOLDER
    assert torch.equal(actual.pooler_output, expected.pooler_output)
    assert torch.equal(actual.last_hidden_state, expected.last_hidden_state)


def test_processor_takes_grayscale_and_rgb_alike(vit):
    image = load_digits("test", num_images=1)["image"][0]
    gray = vit[1](images=image, return_tensors="pt")["pixel_values"]
    rgb = vit[1](images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
    assert gray.shape == (1, 3, 28, 28)
    assert torch.equal(gray, rgb)


def test_pooled_probe_reaches_ninety_seven_percent(features):
    train_x, train_y, test_x, test_y = features
    accuracy = probe_accuracy(train_x["pooled"], train_y, test_x["pooled"], test_y)
    assert accuracy >= 0.97, f"pooled-embedding probe accuracy {accuracy:.3f} on {len(test_y)} test digits"


def test_pooled_probe_beats_raw_pixels(features):
    train_x, train_y, test_x, test_y = features
    pooled = probe_accuracy(train_x["pooled"], train_y, test_x["pooled"], test_y)
    raw = probe_accuracy(train_x["raw"], train_y, test_x["raw"], test_y)
    assert pooled > raw, f"pooled {pooled:.3f} vs raw pixels {raw:.3f}"


def test_tsne_clusters_are_separated(features):
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    _, _, test_x, test_y = features
    points = TSNE(n_components=2, perplexity=30, init="pca", random_state=0).fit_transform(test_x["pooled"])
    silhouette = silhouette_score(points, test_y)
    # Above 0.5, each digit's points lie much closer to each other than to other digits. Raw pixels
    # score about 0.35 with the same t-SNE (model card), so this bar also means "better than pixels".
    assert silhouette >= 0.5, f"t-SNE silhouette {silhouette:.3f}"


def test_training_script_smoke_run(tmp_path):
    from transformers import ViTImageProcessor, ViTModel

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO_ROOT / "scripts" / "train_mini_vit.py"),
               "--max-steps", "2", "--limit", "64", "--output-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    model = ViTModel.from_pretrained(tmp_path)
    assert model.pooler is not None
    assert ViTImageProcessor.from_pretrained(tmp_path).size == {"height": 28, "width": 28}
    assert "probe_accuracy_pooled" in json.loads((tmp_path / "training_metrics.json").read_text())
