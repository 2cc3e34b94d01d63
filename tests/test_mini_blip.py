"""The shipped mini BLIP heads meet their bars, load through the registry, and retrain from the script."""

import sys
from pathlib import Path

import pytest
import torch

from course_utils.paths import models_dir
from course_utils.registry import model_source

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import blip_tasks  # noqa: E402
import train_mini_blip  # noqa: E402

HEAD_CLASSES = {
    "blip_caption": ("mini-blip-caption", "BlipForConditionalGeneration"),
    "blip_vqa": ("mini-blip-vqa", "BlipForQuestionAnswering"),
    "blip_itm": ("mini-blip-itm", "BlipForImageTextRetrieval"),
}


def _load(role: str):
    import transformers

    return getattr(transformers, HEAD_CLASSES[role][1]).from_pretrained(model_source(role, profile="mini")).eval()


@pytest.fixture(scope="module")
def processor():
    from transformers import BlipProcessor

    return BlipProcessor.from_pretrained(model_source("blip_caption", profile="mini"))


@pytest.fixture(scope="module")
def eval_set():
    from course_utils.data.shapes import load_captioned_shapes

    return load_captioned_shapes("test", train_mini_blip.NUM_EVAL_IMAGES, seed=0, profile="mini")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_caption_bar(processor, eval_set):
    metrics = blip_tasks.evaluate_captioning(_load("blip_caption"), processor, eval_set)
    assert metrics["num_images"] >= 100
    assert metrics["caption_accuracy"] >= 0.90, metrics


def test_caption_prefix_continues(processor, eval_set):
    metrics = blip_tasks.evaluate_captioning(_load("blip_caption"), processor, eval_set, prefix="a picture of")
    assert metrics["prefix_accuracy"] >= 0.80, metrics


def test_vqa_bar(processor, eval_set):
    metrics = blip_tasks.evaluate_vqa(_load("blip_vqa"), processor, eval_set)
    assert metrics["num_questions"] >= 200
    assert metrics["vqa_accuracy"] >= 0.85, metrics


def test_itm_bar(processor, eval_set):
    metrics = blip_tasks.evaluate_matching(_load("blip_itm"), processor, eval_set)
    assert metrics["itm_auc"] >= 0.95, metrics


def test_itm_prefers_true_colour(processor):
    from course_utils.data.shapes import render_scene

    image = render_scene("red", "circle", seed=3)
    probabilities = blip_tasks.match_probabilities(_load("blip_itm"), processor, [image] * 2,
                                                   ["a red circle", "a blue circle"])
    assert probabilities[0] > 0.5 > probabilities[1]


def test_generation_is_deterministic(processor, eval_set):
    model = _load("blip_caption")
    images = list(eval_set.select(range(8))["image"])
    assert blip_tasks.generate_captions(model, processor, images) == blip_tasks.generate_captions(
        model, processor, images)


@pytest.mark.parametrize("role", sorted(HEAD_CLASSES))
def test_registry_matches_plain_load(role):
    import transformers

    folder, class_name = HEAD_CLASSES[role]
    assert Path(model_source(role, profile="mini")) == models_dir() / folder
    plain = getattr(transformers, class_name).from_pretrained(models_dir() / folder).state_dict()
    registry = _load(role).state_dict()
    assert plain.keys() == registry.keys()
    assert all(torch.equal(plain[key], registry[key]) for key in plain)


@pytest.mark.parametrize("role", sorted(HEAD_CLASSES))
def test_folder_size_and_format(role):
    folder = models_dir() / HEAD_CLASSES[role][0]
    files = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json", "processor_config.json"} <= files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    assert sum(path.stat().st_size for path in folder.iterdir()) <= 10e6


def test_tokenizer_loads_with_both_bert_classes():
    from transformers import BertTokenizer, BertTokenizerFast

    folder = model_source("blip_vqa", profile="mini")
    text = "where is the red star?"
    ids = BertTokenizerFast.from_pretrained(folder)(text).input_ids
    assert BertTokenizer.from_pretrained(folder)(text).input_ids == ids
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text



def test_wordpiece_vocabulary_repeats_and_orders_tokens():
    texts = ["a red star", "a red circle", "where is the red star?", "a blue box"]
    first, second = blip_tasks.train_wordpiece(texts), blip_tasks.train_wordpiece(texts)
    # The same texts give the same ids, call after call (the library trainer did not).
    assert first.get_vocab() == second.get_vocab()
    vocab = blip_tasks.wordpiece_vocabulary(texts)
    tokens = list(vocab)
    assert tokens[: len(blip_tasks.SPECIAL_TOKENS)] == list(blip_tasks.SPECIAL_TOKENS)
    assert list(vocab.values()) == list(range(len(vocab)))
    # Whole words follow the characters, the most frequent first.
    assert tokens.index("red") < tokens.index("star") < tokens.index("blue")
    assert tokens.index("##x") < tokens.index("red")
    # An unseen word made of known characters splits into pieces, not [UNK].
    pieces = first.tokenize("reds")
    assert pieces[0] == "red"
    assert "[UNK]" not in pieces
    # A cap keeps the characters and drops the rarest words.
    capped = blip_tasks.wordpiece_vocabulary(texts, vocab_size=len(vocab) - 1)
    assert "red" in capped
    assert "where" not in capped
    with pytest.raises(ValueError, match="vocab_size 10 is too small"):
        blip_tasks.wordpiece_vocabulary(texts, vocab_size=10)

def test_training_script_smoke(tmp_path):
    metrics = train_mini_blip.main(
        ["--max-steps", "2", "--limit", "24", "--output-dir", str(tmp_path)]
    )
    from transformers import BlipForQuestionAnswering, BlipProcessor

    for folder in train_mini_blip.HEADS.values():
        assert (tmp_path / folder / "model.safetensors").exists()
        assert (tmp_path / folder / "README.md").exists()
    model = BlipForQuestionAnswering.from_pretrained(tmp_path / "mini-blip-vqa")
    processor = BlipProcessor.from_pretrained(tmp_path / "mini-blip-vqa")
    assert model.config.vision_config.image_size == 64
    assert processor.tokenizer.bos_token == "[DEC]"
    assert 0.0 <= metrics["vqa_accuracy"] <= 1.0


def test_training_script_rejects_bad_steps(tmp_path):
    with pytest.raises(ValueError, match="--max-steps must be at least 1"):
        train_mini_blip.main(["--max-steps", "0", "--output-dir", str(tmp_path)])
