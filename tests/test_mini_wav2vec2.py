"""Checks on the shipped mini wav2vec 2.0 encoder (``data/models/mini-wav2vec2``) and its training script.

The quality bars use the model as notebook 03 does: load through the
registry, run ``Wav2Vec2FeatureExtractor`` at 16 kHz and ``Wav2Vec2Model``,
and average ``last_hidden_state`` over time. A logistic-regression probe
fitted on the training clips is scored on the test clips, whose voices
training never heard, and compared with the same probe on MFCC statistics.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.data.speech_commands import load_speech_commands
from course_utils.paths import models_dir
from course_utils.registry import model_source

REPO_ROOT = Path(__file__).resolve().parents[1]
FOLDER = models_dir() / "mini-wav2vec2"
SAMPLE_RATE = 16_000


@pytest.fixture(scope="module")
def wav2vec2():
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    source = model_source("audio_encoder", profile="mini")
    return Wav2Vec2Model.from_pretrained(source).eval(), Wav2Vec2FeatureExtractor.from_pretrained(source)


def clips(split: str) -> tuple[list[np.ndarray], np.ndarray, set[str]]:
    data = load_speech_commands(split, sample_rate=SAMPLE_RATE)
    rows = list(data)
    return [row["audio"]["array"] for row in rows], np.array([row["label"] for row in rows]), {
        row["speaker_id"] for row in rows
    }


@torch.no_grad()
def mean_pooled(wav2vec2, waves: list[np.ndarray]) -> np.ndarray:
    model, feature_extractor = wav2vec2
    chunks = []
    for start in range(0, len(waves), 100):
        inputs = feature_extractor(waves[start : start + 100], sampling_rate=SAMPLE_RATE, return_tensors="pt")
        chunks.append(model(**inputs).last_hidden_state.mean(dim=1))
    return torch.cat(chunks).numpy()


def mfcc_statistics(waves: list[np.ndarray]) -> np.ndarray:
    import librosa

    rows = []
    for wave in waves:
        mfcc = librosa.feature.mfcc(y=wave, sr=SAMPLE_RATE, n_mfcc=20, n_fft=400, hop_length=160)
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    return np.stack(rows)


def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(train_x, train_y).score(test_x, test_y))


@pytest.fixture(scope="module")
def splits():
    train, test = clips("train"), clips("test")
    assert not train[2] & test[2], "train and test share voices"
    return train, test


@pytest.fixture(scope="module")
def encoder_probe_accuracy(wav2vec2, splits):
    (train_waves, train_y, _), (test_waves, test_y, _) = splits
    return probe_accuracy(mean_pooled(wav2vec2, train_waves), train_y, mean_pooled(wav2vec2, test_waves), test_y)


def test_folder_is_small_safetensors_only():
    names = {path.name for path in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    size_mb = sum(path.stat().st_size for path in FOLDER.iterdir()) / 1e6
    assert size_mb <= 10.0, f"mini-wav2vec2 is {size_mb:.1f} MB"


def test_registry_and_folder_give_same_outputs(wav2vec2, splits):
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    direct = Wav2Vec2Model.from_pretrained(FOLDER).eval()
    feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(FOLDER)
    waves = splits[1][0][:3]
    assert feature_extractor.sampling_rate == SAMPLE_RATE
    with torch.no_grad():
        expected = direct(**feature_extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt"))
        actual = wav2vec2[0](**wav2vec2[1](waves, sampling_rate=SAMPLE_RATE, return_tensors="pt"))
    assert Path(model_source("audio_encoder", profile="mini")) == FOLDER
    assert torch.equal(actual.last_hidden_state, expected.last_hidden_state)
    # One second at 16 kHz gives 49 frames of 20 ms, as in wav2vec2-base.
    assert actual.last_hidden_state.shape[:2] == (3, 49)


def test_probe_reaches_ninety_percent_on_unseen_voices(encoder_probe_accuracy):
    assert encoder_probe_accuracy >= 0.90, f"mean-pooled probe accuracy {encoder_probe_accuracy:.3f}"


def test_probe_beats_mfcc_baseline(encoder_probe_accuracy, splits):
    (train_waves, train_y, _), (test_waves, test_y, _) = splits
    mfcc = probe_accuracy(mfcc_statistics(train_waves), train_y, mfcc_statistics(test_waves), test_y)
    assert encoder_probe_accuracy > mfcc, f"encoder {encoder_probe_accuracy:.3f} vs MFCC {mfcc:.3f}"


def test_training_script_smoke_run(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO_ROOT / "scripts" / "train_mini_wav2vec2.py"),
               "--max-steps", "2", "--limit", "40", "--output-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    model = Wav2Vec2Model.from_pretrained(tmp_path)
    assert model.config.hidden_size == 96
    assert Wav2Vec2FeatureExtractor.from_pretrained(tmp_path).sampling_rate == SAMPLE_RATE
    assert "test_probe_accuracy_mfcc" in json.loads((tmp_path / "training_metrics.json").read_text())
