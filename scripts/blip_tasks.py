"""Task data and metrics for the mini BLIP heads: questions, mismatched captions, the tokenizer, scores.

Used by ``train_mini_blip.py`` (to train and to write the card) and by
``tests/test_mini_blip.py`` (to check the shipped weights against the same bars).
Every function that draws at random takes a ``random.Random``, so a seed fixes
its output.
"""

import random
import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from course_utils.data.shape_captions import COLOR_WORDS, SHAPE_WORDS, make_captions
from course_utils.data.shapes import COLORS, SHAPES

#: Special tokens of the WordPiece vocabulary, in id order. ``[DEC]`` is BLIP's
#: decoder start token (``text_config.bos_token_id``), as in the Salesforce checkpoints.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")

#: Prefixes mixed into training captions so that conditional captioning
#: ("a picture of" -> "a picture of a red circle ...") has been seen.
CAPTION_PREFIXES = ("a picture of", "an image of", "a photo of")


def _count_word(count: int) -> str:
    return str(count)


def make_questions(row: dict, colors: Sequence[str], shapes: Sequence[str], rng: random.Random) -> list[tuple[str, str, str]]:
    """Return ``(question, answer, kind)`` triples that ``row``'s attributes answer without ambiguity.

    ``kind`` is one of ``color``, ``shape``, ``count``, ``position``, ``yes``, ``no``.
    A colour or shape question is asked only about an object that is the only one
    of its shape (or colour) in the scene, so each question has one right answer.
    ``no`` questions name a colour-shape pair that is absent from the scene.

    Args:
        row: One example with ``colors``, ``shapes`` and ``positions`` (one entry per
            object) and ``count``.
        colors, shapes: The vocabularies to draw absent objects from.
        rng: Source of randomness for the absent objects.
    """
    objects = list(zip(row["colors"], row["shapes"], row["positions"], strict=True))
    questions = [("how many shapes are there?", _count_word(row["count"]), "count")]
    shape_counts = {shape: row["shapes"].count(shape) for shape in row["shapes"]}
    color_counts = {color: row["colors"].count(color) for color in row["colors"]}
    for color, shape, position in objects:
        if shape_counts[shape] == 1:
            questions.append((f"what color is the {shape}?", color, "color"))
        if color_counts[color] == 1:
            questions.append((f"what shape is the {color} object?", shape, "shape"))
        if shape_counts[shape] == 1 and color_counts[color] == 1:
            questions.append((f"where is the {color} {shape}?", position, "position"))
    if len(objects) == 1:
        color, shape, position = objects[0]
        questions.append(("what color is the shape?", color, "color"))
        questions.append(("what shape is in the picture?", shape, "shape"))
        questions.append(("where is the shape?", position, "position"))
    color, shape, _ = rng.choice(objects)
    questions.append((f"is there a {color} {shape}?", "yes", "yes"))
    present = set(zip(row["colors"], row["shapes"], strict=True))
    absent = [(c, s) for c in colors for s in shapes if (c, s) not in present]
    # Half of the absent pairs share the colour or shape of a present object, so
    # "no" cannot be answered from one attribute alone.
    near = [(c, s) for c, s in absent if c in color_counts or s in shape_counts]
    pool = near if near and rng.random() < 0.5 else absent
    color, shape = rng.choice(pool)
    questions.append((f"is there a {color} {shape}?", "no", "no"))
    return questions


def _synonym_pattern(table: dict[str, Sequence[str]]) -> re.Pattern:
    # Longest phrase first, so "five-pointed star" wins over "star" and
    # "lemon-yellow" over "yellow".
    phrases = sorted((word for words in table.values() for word in words), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(p) for p in phrases) + r")(?![\w-])")


def _name_of(phrase: str, table: dict[str, Sequence[str]]) -> str:
    return next(name for name, words in table.items() if phrase in words)


def mismatch_caption(caption: str, row: dict, rng: random.Random) -> str | None:
    """Return ``caption`` with one colour or shape word swapped for one absent from the scene.

    Synonyms count ("crimson" is red, "disc" is a circle), and the replacement is
    a random synonym of a colour or shape that no object in ``row`` has. The
    result differs from a true description in one attribute: a hard negative for
    image-text matching. Returns None when the caption names no colour or shape
    that can be swapped.
    """
    options = []
    for table, present in ((COLOR_WORDS, set(row["colors"])), (SHAPE_WORDS, set(row["shapes"]))):
        spare = [name for name in table if name not in present]
        if spare:
            options += [(match, table, spare) for match in _synonym_pattern(table).finditer(caption)]
    if not options:
        return None
    match, table, spare = rng.choice(options)
    replacement = rng.choice(table[rng.choice(spare)])
    text = caption[: match.start()] + replacement + caption[match.end() :]
    # Keep "a"/"an" right when the swapped word starts the noun phrase.
    return re.sub(r"\ban? (?=(\w))", lambda m: "an " if m.group(1) in "aeiou" else "a ", text)


def full_captions(row: dict, rng: random.Random) -> list[str]:
    """Return four captions of ``row`` that all name every colour and shape (none is vague).

    The data set's own captions leave out colours or shapes in some scenes (for the
    fusion lesson). A captioner trained on those would learn to leave them out too.
    """
    generator = np.random.default_rng(rng.randrange(2**32))
    return make_captions(row["colors"], row["shapes"], row["sizes"], row["positions"], row["background"], generator)


def wordpiece_vocabulary(texts: Iterable[str], vocab_size: int = 512) -> dict[str, int]:
    """Return a WordPiece vocabulary for ``texts``: special tokens, characters, then whole words.

    Ids run in a fixed order: :data:`SPECIAL_TOKENS`, every character that starts a
    word, every word-continuing character as ``##c`` (both sorted), then whole words,
    most frequent first (ties alphabetical), until ``vocab_size`` tokens. A word not
    in the vocabulary is split into characters, so nothing maps to ``[UNK]`` unless it
    contains a character never seen.

    ``tokenizers``' ``WordPieceTrainer`` is not used, because it breaks ties between
    equally frequent merges in hash-map order, which changes from run to run: its
    vocabularies, and so the ids the models were trained on, differed between two
    calls on the same texts. With a corpus this small it learned every whole word anyway.

    Raises:
        ValueError: When the characters alone need more than ``vocab_size`` tokens.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in texts for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    starts = sorted({word[0] for word in words})
    continuations = sorted({f"##{char}" for word in words for char in word[1:]})
    tokens = list(SPECIAL_TOKENS) + starts + continuations
    if len(tokens) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is too small: the characters alone need {len(tokens)} tokens.")
    known = set(tokens)
    ranked = sorted((word for word in words if word not in known), key=lambda word: (-words[word], word))
    tokens += ranked[: vocab_size - len(tokens)]
    return {token: index for index, token in enumerate(tokens)}


def train_wordpiece(texts: Iterable[str], vocab_size: int = 512):
    """Build a lower-casing BERT-style WordPiece tokenizer for ``texts`` and return a ``BertTokenizerFast``.

    The vocabulary comes from :func:`wordpiece_vocabulary`, so the same texts always
    give the same ids. The post-processor wraps each text as ``[CLS] text [SEP]``,
    which is what BLIP's processors produce, and ``bos_token`` is ``[DEC]``. The
    returned tokenizer saves as ``tokenizer.json`` plus ``vocab.txt``, so both
    ``BertTokenizer`` and ``BertTokenizerFast`` load it.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    backend = Tokenizer(models.WordPiece(wordpiece_vocabulary(texts, vocab_size), unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = SPECIAL_TOKENS.index("[CLS]"), SPECIAL_TOKENS.index("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.decoder = decoders.WordPiece()
    return BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[DEC]",
        do_lower_case=True,
        model_max_length=64,
    )


# ---------------------------------------------------------------- metrics


def named_attributes(text: str) -> tuple[set[str], set[str]]:
    """Return the colour names and shape names that ``text`` mentions, synonyms included."""
    colors = {_name_of(m.group(1), COLOR_WORDS) for m in _synonym_pattern(COLOR_WORDS).finditer(text.lower())}
    shapes = {_name_of(m.group(1), SHAPE_WORDS) for m in _synonym_pattern(SHAPE_WORDS).finditer(text.lower())}
    return colors, shapes


@torch.no_grad()
def generate_captions(model, processor, images, prefix: str | None = None, batch_size: int = 64) -> list[str]:
    """Return greedy captions for ``images`` (PIL), optionally continuing ``prefix``."""
    captions = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        if prefix is None:
            inputs = processor(images=chunk, return_tensors="pt")
        else:
            inputs = processor(images=chunk, text=[prefix] * len(chunk), return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
        captions += processor.batch_decode(output, skip_special_tokens=True)
    return [caption.strip() for caption in captions]


@torch.no_grad()
def answer_questions(model, processor, images, questions: Sequence[str], batch_size: int = 64) -> list[str]:
    """Return the greedy answer to ``questions[i]`` about ``images[i]``."""
    answers = []
    for start in range(0, len(images), batch_size):
        inputs = processor(
            images=images[start : start + batch_size],
            text=list(questions[start : start + batch_size]),
            padding=True,
            truncation=True,
            return_tensors="pt",
        )
        output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        answers += processor.batch_decode(output, skip_special_tokens=True)
    return [answer.strip() for answer in answers]


@torch.no_grad()
def match_probabilities(model, processor, images, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Return P(match) of each ``(images[i], texts[i])`` pair from the ITM head (softmax index 1)."""
    scores = []
    for start in range(0, len(images), batch_size):
        inputs = processor(
            images=images[start : start + batch_size],
            text=list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            return_tensors="pt",
        )
        logits = model(**inputs).itm_score
        scores.append(logits.softmax(dim=-1)[:, 1])
    return torch.cat(scores).numpy()


@torch.no_grad()
def itm_cosines(model, processor, images, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Return the contrastive cosine of each ``(images[i], texts[i])`` pair (``use_itm_head=False``)."""
    scores = []
    for start in range(0, len(images), batch_size):
        inputs = processor(
            images=images[start : start + batch_size],
            text=list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            return_tensors="pt",
        )
        # The model returns the image-by-text cosine matrix; the pairs are its diagonal.
        scores.append(model(**inputs, use_itm_head=False).itm_score.diagonal())
    return torch.cat(scores).numpy()


# ---------------------------------------------------------------- evaluation


def clean_rows(dataset) -> list[int]:
    """Return the indices of images without corruption.

    Corrupted images hide the colour (faded) or the shape (occluded) by design,
    so no model can be held to naming both from the pixels.
    """
    return [i for i, corruption in enumerate(dataset["corruption"]) if corruption == "none"]


def evaluate_captioning(model, processor, dataset, prefix: str = "a picture of") -> dict:
    """Score captions of the clean single-object images of ``dataset``.

    Returns:
        A dict of shares (0-1) and samples. ``caption_accuracy`` counts captions that
        name the object's colour and shape (synonyms count). ``caption_exact`` also
        requires that no other colour or shape is named. ``prefix_accuracy`` counts
        captions generated after ``prefix`` that start with it and name colour and
        shape. ``num_images``, ``examples`` (first five captions) and
        ``prefix_examples`` (first three prefixed captions) complete it.
    """
    rows = [i for i in clean_rows(dataset) if dataset[i]["count"] == 1]
    subset = dataset.select(rows)
    images = list(subset["image"])
    truths = list(zip(subset["colors"], subset["shapes"], strict=True))
    plain = generate_captions(model, processor, images)
    prefixed = generate_captions(model, processor, images, prefix=prefix)
    named = [named_attributes(text) for text in plain]
    right = [colors[0] in c and shapes[0] in s for (c, s), (colors, shapes) in zip(named, truths, strict=True)]
    exact = [(c, s) == ({colors[0]}, {shapes[0]}) for (c, s), (colors, shapes) in zip(named, truths, strict=True)]
    prefix_ok = []
    for text, (colors, shapes) in zip(prefixed, truths, strict=True):
        c, s = named_attributes(text)
        prefix_ok.append(text.startswith(prefix) and colors[0] in c and shapes[0] in s)
    return {
        "caption_accuracy": float(np.mean(right)),
        "caption_exact": float(np.mean(exact)),
        "prefix_accuracy": float(np.mean(prefix_ok)),
        "num_images": len(rows),
        "examples": plain[:5],
        "prefix_examples": prefixed[:3],
    }


def evaluation_questions(dataset, seed: int = 0) -> tuple[list[int], list[str], list[str], list[str]]:
    """Return one seeded question per clean image: ``(row_indices, questions, answers, kinds)``."""
    rng = random.Random(seed)
    indices, questions, answers, kinds = [], [], [], []
    for i in clean_rows(dataset):
        row = dataset[i]
        question, answer, kind = rng.choice(make_questions(row, COLORS, SHAPES, rng))
        indices.append(i)
        questions.append(question)
        answers.append(answer)
        kinds.append(kind)
    return indices, questions, answers, kinds


def evaluate_vqa(model, processor, dataset, seed: int = 0) -> dict:
    """Score exact-match answers to one seeded question per clean image of ``dataset``.

    Returns:
        ``vqa_accuracy`` (0-1), ``vqa_accuracy_by_kind`` and ``num_questions``.
    """
    indices, questions, answers, kinds = evaluation_questions(dataset, seed)
    images = list(dataset.select(indices)["image"])
    predicted = answer_questions(model, processor, images, questions)
    correct = np.array([p == a for p, a in zip(predicted, answers, strict=True)])
    by_kind = {kind: float(correct[[k == kind for k in kinds]].mean()) for kind in sorted(set(kinds))}
    return {"vqa_accuracy": float(correct.mean()), "vqa_accuracy_by_kind": by_kind, "num_questions": len(indices)}


def matching_pairs(dataset, seed: int = 0) -> tuple[list[int], list[str], list[int], list[str]]:
    """Return seeded image-text pairs for matching: ``(row_indices, texts, labels, kinds)``.

    Each clean image gets a true caption (label 1), the same caption with one
    colour or shape swapped (label 0, kind ``swapped``) and the caption of an image
    with other objects (label 0, kind ``other``).
    """
    rng = random.Random(seed)
    rows = clean_rows(dataset)
    keys = [tuple(sorted(zip(c, s, strict=True))) for c, s in zip(dataset["colors"], dataset["shapes"], strict=True)]
    indices, texts, labels, kinds = [], [], [], []
    for i in rows:
        row = dataset[i]
        caption = rng.choice(row["captions"])
        swapped = mismatch_caption(caption, row, rng)
        other = rng.choice([j for j in rows if keys[j] != keys[i]])
        for text, label, kind in ((caption, 1, "true"), (swapped, 0, "swapped"),
                                  (rng.choice(dataset[other]["captions"]), 0, "other")):
            if text is not None:
                indices.append(i)
                texts.append(text)
                labels.append(label)
                kinds.append(kind)
    return indices, texts, labels, kinds


def evaluate_matching(model, processor, dataset, seed: int = 0) -> dict:
    """Score image-text matching on :func:`matching_pairs` of ``dataset`` by ROC AUC.

    Returns:
        ``itm_auc`` (ITM head, all negatives), ``itm_auc_swapped`` (only one-word
        swaps as negatives), ``itc_auc`` (contrastive cosine, all negatives) and
        ``num_pairs``.
    """
    from sklearn.metrics import roc_auc_score

    indices, texts, labels, kinds = matching_pairs(dataset, seed)
    images = list(dataset.select(indices)["image"])
    probabilities = match_probabilities(model, processor, images, texts)
    cosines = itm_cosines(model, processor, images, texts)
    labels = np.array(labels)
    hard = np.array([kind != "other" for kind in kinds])
    return {
        "itm_auc": float(roc_auc_score(labels, probabilities)),
        "itm_auc_swapped": float(roc_auc_score(labels[hard], probabilities[hard])),
        "itc_auc": float(roc_auc_score(labels, cosines)),
        "num_pairs": len(texts),
    }
