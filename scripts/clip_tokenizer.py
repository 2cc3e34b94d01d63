"""Train a small CLIP byte-pair tokenizer on caption text.

The result loads with ``CLIPTokenizer`` (and its alias ``CLIPTokenizerFast``)
from ``vocab.json`` + ``merges.txt``, exactly like OpenAI's CLIP tokenizer:
the same lower-casing, pre-tokenizer regex, byte-level alphabet, ``</w>``
end-of-word suffix and ``<|startoftext|>``/``<|endoftext|>`` special tokens.
Only the vocabulary is smaller, learned from the course captions.
"""

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"

# The pre-tokenizer regex of CLIPTokenizer in transformers 5.25 (tokenization_clip.py), so that
# training splits words exactly as loading will.
_WORD_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _byte_alphabet() -> list[str]:
    """Return the 256 printable characters that byte-level BPE uses for the bytes 0-255, in byte order."""
    return sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda char: _BYTE_OF_CHAR[char])


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's reversible byte-to-character table: printable Latin-1 bytes map to themselves and the
    # rest to code points from 256 up, so every byte has a visible, whitespace-free character.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


_BYTE_OF_CHAR = {char: byte for byte, char in _bytes_to_unicode().items()}


def _new_bpe_pipeline() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix=END_OF_WORD))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    return tokenizer


def train_bpe(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn byte-pair merges from ``texts`` and return ``(vocab, merges)`` in CLIP's layout.

    The vocabulary starts with the 256 byte characters and the same characters
    with ``</w>``, so any word, even one never seen, tokenizes without an unknown
    token. One token per learned merge follows, in merge order, and
    ``<|startoftext|>`` and ``<|endoftext|>`` take the last two ids.

    Args:
        texts: Training text, such as every caption of the training split.
        vocab_size: Upper bound on the vocabulary size, special tokens included; at least 514.
        min_frequency: A pair must occur this many times to be merged.
    """
    if vocab_size < 2 * 256 + 2:
        raise ValueError(f"vocab_size must be at least 514 (bytes, bytes with </w>, 2 specials), got {vocab_size}.")
    pipeline = _new_bpe_pipeline()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        end_of_word_suffix=END_OF_WORD,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    pipeline.train_from_iterator(texts, trainer)
    learned = json.loads(pipeline.to_str())["model"]["merges"]

    alphabet = _byte_alphabet()
    tokens = alphabet + [char + END_OF_WORD for char in alphabet]
    merges: list[tuple[str, str]] = []
    for pair in learned:
        left, right = pair if isinstance(pair, list) else pair.split(" ")
        merged = left + right
        if merged in tokens:
            continue
        # Stop before the special tokens would push the vocabulary past vocab_size.
        if len(tokens) + 2 >= vocab_size:
            break
        tokens.append(merged)
        merges.append((left, right))
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def write_vocab_files(vocab: dict[str, int], merges: list[tuple[str, str]], folder: Path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` (with the usual ``#version`` header) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges), encoding="utf-8")
