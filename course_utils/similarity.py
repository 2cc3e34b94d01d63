"""Normalisation, cosine similarity and top-k semantic search over embeddings.

Thin, validated wrappers around ``torch.nn.functional.normalize`` and
``sentence_transformers.util``: the notebooks first compute each quantity by
hand, then call these and check the two agree.

Taught in ``notebooks/session1/01_text_embeddings.ipynb``.
"""

import torch


def _as_matrix(embeddings, name: str) -> torch.Tensor:
    matrix = torch.as_tensor(embeddings)
    if matrix.ndim == 1:
        matrix = matrix.unsqueeze(0)
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be one vector (dim,) or a matrix (n, dim), got shape {tuple(matrix.shape)}."
        )
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one embedding.")
    if not matrix.is_floating_point():
        matrix = matrix.float()
    return matrix


def _check_same_dim(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Embedding sizes differ: {a.shape[1]} vs {b.shape[1]}. Both sides must come "
            "from the same model (or the same shared space, as in CLIP)."
        )


def normalize(embeddings) -> torch.Tensor:
    """Scale each row to unit L2 norm.

    Args:
        embeddings: ``(dim,)`` or ``(n, dim)`` tensor or array.

    Returns:
        ``(n, dim)`` float tensor whose rows have norm 1. The dot product of two
        unit vectors equals their cosine similarity.
    """
    matrix = _as_matrix(embeddings, "embeddings")
    return torch.nn.functional.normalize(matrix, p=2, dim=1)


def cos_sim(a, b=None) -> torch.Tensor:
    """Return the cosine-similarity matrix, ``res[i][j] = cos(a[i], b[j])``.

    Args:
        a: ``(n, dim)`` or ``(dim,)`` embeddings.
        b: ``(m, dim)`` or ``(dim,)`` embeddings; default None compares ``a`` with itself.

    Returns:
        ``(n, m)`` float tensor with values in [-1, 1].

    Raises:
        ValueError: empty input or differing embedding sizes.
    """
    from sentence_transformers import util

    a = _as_matrix(a, "a")
    b = a if b is None else _as_matrix(b, "b")
    _check_same_dim(a, b)
    return util.cos_sim(a, b)


def semantic_search(query_embeddings, corpus_embeddings, top_k: int = 5) -> list[list[dict]]:
    """Find the ``top_k`` corpus entries most similar (cosine) to each query.

    Args:
        query_embeddings: ``(q, dim)`` or ``(dim,)``.
        corpus_embeddings: ``(n, dim)``.
        top_k: Hits per query, at least 1; capped at the corpus size.

    Returns:
        One list per query of ``{"corpus_id": int, "score": float}``, best first.
        Exhaustive search, fine up to about a million corpus entries.
    """
    from sentence_transformers import util

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
    queries = _as_matrix(query_embeddings, "query_embeddings")
    corpus = _as_matrix(corpus_embeddings, "corpus_embeddings")
    _check_same_dim(queries, corpus)
    return util.semantic_search(queries, corpus, top_k=min(top_k, corpus.shape[0]))
