import pytest
import torch
from sentence_transformers import SentenceTransformer

from course_utils.registry import model_source
from course_utils.text import check_sentences, encode_texts, token_table


def test_single_string_becomes_list():
    assert check_sentences("hello") == ["hello"]


def test_empty_list_rejected():
    with pytest.raises(ValueError, match="sentences is empty"):
        check_sentences([])


def test_non_string_item_named():
    with pytest.raises(TypeError, match=r"sentences\[1\] is int \(42\), not str"):
        check_sentences(["fine", 42])


def test_non_sequence_rejected():
    with pytest.raises(TypeError, match="must be a string or a list of strings, got int"):
        check_sentences(5)


def test_bytes_rejected_with_decode_hint():
    with pytest.raises(TypeError, match=r"sentences is bytes \(b'ab'\), not str\. Decode it first"):
        check_sentences(b"ab")
    with pytest.raises(TypeError, match=r"sentences\[1\] is bytes \(b'c'\), not str\. Decode every item"):
        check_sentences(["fine", b"c"])


def test_argument_name_in_messages():
    with pytest.raises(TypeError, match=r"captions\[0\] is int \(7\), not str"):
        check_sentences([7], name="captions")
    with pytest.raises(ValueError, match="captions is empty"):
        check_sentences([], name="captions")


def test_token_table_marks_special_and_padding(text_encoder):
    tokenizer, _ = text_encoder
    table = token_table(tokenizer, ["Hi.", "A longer sentence here."])
    first = table[table.sentence == 0]
    assert first.token.iloc[0] == "[CLS]"
    assert first.special.iloc[0]
    assert (first[first.token == "[PAD]"].attention_mask == 0).all()
    assert len(first) == len(table[table.sentence == 1])


def test_encode_matches_sentence_transformers(text_encoder):
    tokenizer, model = text_encoder
    sentences = ["The cat sleeps.", "Stocks fell sharply on Monday.", "A kitten is napping on the sofa."]
    ours = encode_texts(sentences, tokenizer, model)
    reference = SentenceTransformer(model_source("text_encoder"), device="cpu")
    expected = reference.encode(sentences, convert_to_tensor=True, batch_size=2)
    assert ours.shape == (3, 384)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_encode_keeps_input_order_across_batches(text_encoder):
    tokenizer, model = text_encoder
    sentences = ["short", "a much much longer sentence than the first", "mid length one"]
    together = encode_texts(sentences, tokenizer, model, batch_size=3)
    one_by_one = torch.stack([encode_texts(s, tokenizer, model) for s in sentences])
    assert torch.allclose(together, one_by_one, atol=1e-5)


def test_encode_string_returns_vector(text_encoder):
    tokenizer, model = text_encoder
    vector = encode_texts("one sentence", tokenizer, model)
    assert vector.shape == (384,)
    assert torch.isclose(vector.norm(), torch.tensor(1.0))


def test_encode_warns_on_truncation(text_encoder):
    tokenizer, model = text_encoder
    with pytest.warns(UserWarning, match=r"reached max_length=8 tokens"):
        encode_texts(["word " * 20, "short"], tokenizer, model, max_length=8)


def test_encode_invalid_batch_size(text_encoder):
    tokenizer, model = text_encoder
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        encode_texts(["a"], tokenizer, model, batch_size=0)


def test_encode_unknown_pooling(text_encoder):
    tokenizer, model = text_encoder
    with pytest.raises(ValueError, match="Unknown pooling strategy 'sum'"):
        encode_texts(["a"], tokenizer, model, pooling="sum")
