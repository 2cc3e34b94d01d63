import numpy as np
import pytest
import torch

from course_utils.similarity import cos_sim, normalize, semantic_search


def test_normalize_gives_unit_rows():
    rows = normalize(np.array([[3.0, 4.0], [0.0, 2.0]]))
    assert torch.allclose(rows.norm(dim=1), torch.ones(2, dtype=rows.dtype))
    assert torch.allclose(rows[0], torch.tensor([0.6, 0.8], dtype=rows.dtype))


def test_cos_sim_of_unit_vectors_is_dot_product():
    generator = torch.Generator().manual_seed(0)
    a = normalize(torch.randn(4, 8, generator=generator))
    b = normalize(torch.randn(3, 8, generator=generator))
    assert torch.allclose(cos_sim(a, b), a @ b.T, atol=1e-6)


def test_cos_sim_single_vector_is_one_row():
    result = cos_sim([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert result.shape == (1, 3)
    assert torch.allclose(result, torch.tensor([[1.0, 0.0, -1.0]]))


def test_cos_sim_without_b_compares_with_itself():
    matrix = cos_sim(torch.eye(3))
    assert torch.allclose(matrix, torch.eye(3))


def test_cos_sim_dimension_mismatch_rejected():
    with pytest.raises(ValueError, match="Embedding sizes differ: 3 vs 4"):
        cos_sim(torch.ones(2, 3), torch.ones(2, 4))


def test_empty_embeddings_rejected():
    with pytest.raises(ValueError, match="a is empty"):
        cos_sim(torch.ones(0, 3), torch.ones(2, 3))


def test_three_dimensional_input_rejected():
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)"):
        normalize(torch.ones(2, 2, 2))


def test_semantic_search_orders_hits():
    corpus = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    hits = semantic_search(torch.tensor([1.0, 0.1]), corpus, top_k=2)
    assert [hit["corpus_id"] for hit in hits[0]] == [0, 2]
    assert hits[0][0]["score"] > hits[0][1]["score"]


def test_semantic_search_caps_top_k_at_corpus_size():
    hits = semantic_search(torch.ones(2), torch.eye(2), top_k=10)
    assert len(hits[0]) == 2


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True])
def test_semantic_search_invalid_top_k(top_k):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        semantic_search(torch.ones(2), torch.eye(2), top_k=top_k)
