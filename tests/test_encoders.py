import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)

from course_utils.encoders import embed_audio, embed_images


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)
    processor = ViTImageProcessor(size={"height": 16, "width": 16})
    return processor, ViTModel(config).eval()


@pytest.fixture(scope="module")
def tiny_wav2vec2():
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4),
                            num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=False)
    return extractor, Wav2Vec2Model(config).eval()


def test_image_cls_matches_manual_pass(tiny_vit):
    processor, model = tiny_vit
    images = [Image.new("L", (20, 20), v) for v in (0, 128, 255)]
    embeddings = embed_images(images, processor, model, pooling="cls", batch_size=2, show_progress_bar=False)
    inputs = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs).last_hidden_state[:, 0].numpy()
    assert embeddings.shape == (3, 16)
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)


def test_image_mean_skips_cls_token(tiny_vit):
    processor, model = tiny_vit
    image = Image.new("RGB", (16, 16), (10, 200, 30))
    embedding = embed_images([image], processor, model, pooling="mean", show_progress_bar=False)
    with torch.inference_mode():
        hidden = model(**processor(images=image, return_tensors="pt")).last_hidden_state
    np.testing.assert_allclose(embedding[0], hidden[0, 1:].mean(0).numpy(), atol=1e-5)


def test_image_bad_pooling_and_empty(tiny_vit):
    processor, model = tiny_vit
    with pytest.raises(ValueError, match="Unknown pooling 'max'. Valid choices: cls, mean, pooler"):
        embed_images([Image.new("RGB", (16, 16))], processor, model, pooling="max")
    with pytest.raises(ValueError, match="images is empty"):
        embed_images([], processor, model)


def test_audio_mean_pools_frames(tiny_wav2vec2):
    extractor, model = tiny_wav2vec2
    clip = np.sin(np.linspace(0, 200, 1600)).astype(np.float32)
    embedding = embed_audio([clip], extractor, model, 16000, show_progress_bar=False)
    inputs = extractor(clip, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        expected = model(inputs["input_values"]).last_hidden_state.mean(1)[0].numpy()
    assert embedding.shape == (1, 16)
    np.testing.assert_allclose(embedding[0], expected, atol=1e-5)


def test_audio_padding_does_not_change_embedding():
    # Only layer-norm models with an attention mask ignore padding; group-norm models
    # such as wav2vec2-base normalise over it, which is why their clips share one length.
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), feat_extract_norm="layer",
                            do_stable_layer_norm=True, num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    model = Wav2Vec2Model(config).eval()
    rng = np.random.default_rng(0)
    short, long = rng.normal(0, 0.1, 800).astype(np.float32), rng.normal(0, 0.1, 1600).astype(np.float32)
    alone = embed_audio([short], extractor, model, 16000, show_progress_bar=False)[0]
    padded = embed_audio([short, long], extractor, model, 16000, show_progress_bar=False)[0]
    np.testing.assert_allclose(alone, padded, atol=1e-4)


def test_audio_wrong_rate_rejected(tiny_wav2vec2):
    extractor, model = tiny_wav2vec2
    with pytest.raises(ValueError, match="clips are at 8000 Hz but the model expects 16000 Hz; resample"):
        embed_audio([np.zeros(800, np.float32)], extractor, model, 8000)


def test_audio_stereo_rejected(tiny_wav2vec2):
    extractor, model = tiny_wav2vec2
    with pytest.raises(ValueError, match=r"waveforms\[0\] has shape \(800, 2\); pass mono"):
        embed_audio([np.zeros((800, 2), np.float32)], extractor, model, 16000)
