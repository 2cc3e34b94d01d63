import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from course_utils.pooling import cls_pool, max_pool, mean_pool, pool
from course_utils.registry import model_source

EMBEDDINGS = torch.tensor(
    [
        [[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]],  # last position is padding
        [[0.0, 1.0], [2.0, -1.0], [4.0, 3.0]],
    ]
)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_mean_pool_ignores_padding():
    expected = torch.tensor([[2.0, 3.0], [2.0, 1.0]])
    assert torch.equal(mean_pool(EMBEDDINGS, MASK), expected)


def test_cls_pool_takes_first_token():
    assert torch.equal(cls_pool(EMBEDDINGS, MASK), torch.tensor([[1.0, 2.0], [0.0, 1.0]]))


def test_max_pool_ignores_padding():
    assert torch.equal(max_pool(EMBEDDINGS, MASK), torch.tensor([[3.0, 4.0], [4.0, 3.0]]))


def test_pool_accepts_numpy():
    result = pool(EMBEDDINGS.numpy(), MASK.numpy(), "mean")
    assert torch.equal(result, mean_pool(EMBEDDINGS, MASK))


def test_unknown_strategy_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown pooling strategy 'median'. Valid strategies: mean, cls, max"):
        pool(EMBEDDINGS, MASK, "median")


def test_mask_shape_mismatch_rejected():
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 2\)"):
        mean_pool(EMBEDDINGS, MASK[:, :2])


def test_two_dimensional_input_rejected():
    with pytest.raises(ValueError, match=r"must have shape \(batch, seq_len, hidden\), got \(2, 3\)"):
        mean_pool(EMBEDDINGS[:, :, 0], MASK)


def test_integer_embeddings_rejected():
    with pytest.raises(TypeError, match="must be floating point"):
        mean_pool(EMBEDDINGS.long(), MASK)


@pytest.mark.parametrize("strategy", ["mean", "cls", "max"])
def test_all_padding_row_rejected(strategy):
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"rows \[1\] contain only padding"):
        pool(EMBEDDINGS, mask, strategy)


def test_hand_pooling_matches_sentence_transformers(text_encoder):
    tokenizer, model = text_encoder
    sentences = ["A short one.", "A noticeably longer sentence, so the first one gets padded."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.inference_mode():
        token_embeddings = model(**batch).last_hidden_state
    ours = torch.nn.functional.normalize(mean_pool(token_embeddings, batch["attention_mask"]), dim=1)

    reference = SentenceTransformer(model_source("text_encoder"), device="cpu")
    expected = reference.encode(sentences, convert_to_numpy=True)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)
