"""Pooling token embeddings into one sentence embedding.

A transformer encoder returns one vector per token, shape ``(batch, seq_len,
hidden)``. A sentence embedding needs one vector per sentence, ``(batch,
hidden)``. Padding tokens must not count, so every strategy takes the
tokenizer's ``attention_mask`` (1 = real token, 0 = padding).

Taught in ``notebooks/session1/01_text_embeddings.ipynb``.
"""

import torch

POOLING_STRATEGIES = ("mean", "cls", "max")


def _as_tensors(token_embeddings, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    embeddings = torch.as_tensor(token_embeddings)
    if embeddings.ndim != 3:
        raise ValueError(
            "token_embeddings must have shape (batch, seq_len, hidden), got "
            f"{tuple(embeddings.shape)}. Pass the model's last_hidden_state."
        )
    if not embeddings.is_floating_point():
        raise TypeError(f"token_embeddings must be floating point, got dtype {embeddings.dtype}.")
    mask = torch.as_tensor(attention_mask, device=embeddings.device)
    if tuple(mask.shape) != tuple(embeddings.shape[:2]):
        raise ValueError(
            f"attention_mask has shape {tuple(mask.shape)} but token_embeddings has "
            f"(batch, seq_len) = {tuple(embeddings.shape[:2])}. Pass the mask returned "
            "by the same tokenizer call."
        )
    mask = mask.bool()
    empty_rows = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty_rows:
        raise ValueError(
            f"attention_mask rows {empty_rows} contain only padding, so there is nothing "
            "to pool. Remove empty inputs before encoding."
        )
    return embeddings, mask


def mean_pool(token_embeddings, attention_mask) -> torch.Tensor:
    """Average the embeddings of real tokens (the pooling all-MiniLM-L6-v2 was trained with).

    Args:
        token_embeddings: Float tensor or array, ``(batch, seq_len, hidden)``.
        attention_mask: 0/1 tensor or array, ``(batch, seq_len)``.

    Returns:
        ``(batch, hidden)`` tensor: ``sum_t mask[b, t] * x[b, t] / sum_t mask[b, t]``.

    Raises:
        ValueError: wrong shapes, or a row with no real token.
    """
    embeddings, mask = _as_tensors(token_embeddings, attention_mask)
    weights = mask.unsqueeze(-1).to(embeddings.dtype)  # (batch, seq_len, 1)
    return (embeddings * weights).sum(dim=1) / weights.sum(dim=1)


def cls_pool(token_embeddings, attention_mask) -> torch.Tensor:
    """Take the first token's embedding (``[CLS]`` for BERT-style tokenizers).

    Args and shapes as in :func:`mean_pool`. The mask is only checked, because
    ``[CLS]`` is always the first, real token.
    """
    embeddings, _ = _as_tensors(token_embeddings, attention_mask)
    return embeddings[:, 0]


def max_pool(token_embeddings, attention_mask) -> torch.Tensor:
    """Take the element-wise maximum over real tokens.

    Args and shapes as in :func:`mean_pool`. Padding positions are set to the
    dtype's minimum first, so they never win the maximum.
    """
    embeddings, mask = _as_tensors(token_embeddings, attention_mask)
    masked = embeddings.masked_fill(~mask.unsqueeze(-1), torch.finfo(embeddings.dtype).min)
    return masked.max(dim=1).values


def pool(token_embeddings, attention_mask, strategy: str = "mean") -> torch.Tensor:
    """Pool with the strategy named ``"mean"``, ``"cls"`` or ``"max"``.

    Raises:
        ValueError: unknown strategy; the message lists the valid ones.
    """
    functions = {"mean": mean_pool, "cls": cls_pool, "max": max_pool}
    if strategy not in functions:
        raise ValueError(
            f"Unknown pooling strategy {strategy!r}. Valid strategies: "
            f"{', '.join(POOLING_STRATEGIES)}."
        )
    return functions[strategy](token_embeddings, attention_mask)
