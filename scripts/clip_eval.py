"""Evaluate mini-clip on held-out captioned shapes and write its model card.

Metrics (all on the test split, which training does not use):

- zero-shot accuracy: single-object, uncorrupted scenes classified among the
  24 prompts "a {colour} {shape}"; the same on every single-object scene
  (occluded and faded ones included) for reference;
- recall@1 and @5, text to image and image to text, over a gallery of test
  scenes paired with their detailed caption (size, colour, shape, position);
- the same zero-shot task with prompt phrasings that no training caption uses
  but whose words all occur in the training captions.
"""

import re
from pathlib import Path

import numpy as np
import torch

ZERO_SHOT_TEMPLATE = "a {color} {shape}"
# Phrasings absent from the training captions (the caption generator never writes them),
# built only from words the captions use, so the text encoder has trained embeddings for every word.
UNSEEN_TEMPLATES = (
    "{color} {shape}",
    "one {color} {shape}",
    "the {shape} is {color}",
    "a {shape} in {color}",
    "a {color} {shape} on a background",
)
# Index of the detailed caption ("a small crimson disc in the upper left corner") in each row's captions.
DETAILED_CAPTION = 1


@torch.no_grad()
def image_embeddings(model, processor, images, batch_size: int = 256) -> torch.Tensor:
    """Return L2-normalized image embeddings, shape (N, projection_dim)."""
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = processor(images=images[start : start + batch_size], return_tensors="pt")["pixel_values"]
        chunks.append(model.get_image_features(pixel_values=pixels).pooler_output)
    return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)


@torch.no_grad()
def text_embeddings(model, processor, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Return L2-normalized text embeddings, shape (N, projection_dim)."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = processor(text=texts[start : start + batch_size], padding=True, truncation=True, return_tensors="pt")
        chunks.append(model.get_text_features(**tokens).pooler_output)
    return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)


def single_object_rows(dataset, clean_only: bool) -> list[int]:
    """Return the indices of single-object scenes, optionally only those without corruption."""
    return [
        index
        for index, (count, corruption) in enumerate(zip(dataset["count"], dataset["corruption"], strict=True))
        if count == 1 and (corruption == "none" or not clean_only)
    ]


def zero_shot_accuracy(model, processor, dataset, rows: list[int], template: str) -> float:
    """Return the share of ``rows`` whose best-matching colour x shape prompt is their true class."""
    from course_utils.data.shapes import COLORS, SHAPES

    classes = [(color, shape) for color in COLORS for shape in SHAPES]
    prompts = [template.format(color=color, shape=shape) for color, shape in classes]
    text = text_embeddings(model, processor, prompts)
    subset = dataset.select(rows)
    image = image_embeddings(model, processor, subset["image"])
    predicted = (image @ text.t()).argmax(dim=1).tolist()
    truth = [classes.index((colors[0], shapes[0])) for colors, shapes in zip(subset["colors"], subset["shapes"], strict=True)]
    return float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))


def recall_at_k(model, processor, dataset, gallery_size: int, ks=(1, 5)) -> dict[str, float]:
    """Return text-to-image and image-to-text recall@k over the first ``gallery_size`` scenes.

    Each scene is paired with its detailed caption. A query counts as a hit when
    its own partner ranks in the top k, even if another scene fits the caption
    equally well, so the figures are a lower bound for captions that repeat.
    """
    gallery = dataset.select(range(min(gallery_size, len(dataset))))
    texts = [captions[DETAILED_CAPTION] for captions in gallery["captions"]]
    similarity = text_embeddings(model, processor, texts) @ image_embeddings(model, processor, gallery["image"]).t()
    truth = torch.arange(len(texts))
    metrics = {}
    for direction, scores in (("text_to_image", similarity), ("image_to_text", similarity.t())):
        # Rank of the true partner: how many candidates score strictly higher.
        rank = (scores > scores[truth, truth].unsqueeze(1)).sum(dim=1)
        for k in ks:
            metrics[f"{direction}_recall@{k}"] = float((rank < k).float().mean())
    metrics["retrieval_gallery"] = len(texts)
    return metrics


def caption_words(captions_per_image) -> set[str]:
    """Return the set of lower-case words (letters and hyphens) used by the captions."""
    return {word for captions in captions_per_image for text in captions for word in re.findall(r"[a-z-]+", text.lower())}


def unseen_phrasing_check(model, processor, dataset, rows: list[int], train_captions) -> dict[str, dict]:
    """Return zero-shot accuracy per phrasing in :data:`UNSEEN_TEMPLATES`, after checking each is unseen.

    Raises:
        RuntimeError: a template phrase is a training caption, or uses a word no training caption has.
    """
    from course_utils.data.shapes import COLORS, SHAPES

    seen_captions = {text for captions in train_captions for text in captions}
    vocabulary = caption_words(train_captions)
    results = {}
    for template in UNSEEN_TEMPLATES:
        phrases = [template.format(color=color, shape=shape) for color in COLORS for shape in SHAPES]
        repeated = [phrase for phrase in phrases if phrase in seen_captions]
        if repeated:
            raise RuntimeError(
                f"Template {template!r} produces training captions such as {repeated[:3]}. "
                f"Choose a phrasing the caption generator does not write."
            )
        unknown = caption_words([phrases]) - vocabulary
        if unknown:
            raise RuntimeError(
                f"Template {template!r} uses words missing from the training captions: {sorted(unknown)}. "
                f"Use only caption words."
            )
        results[template] = {"accuracy": zero_shot_accuracy(model, processor, dataset, rows, template)}
    return results


def evaluate(model, processor, test_set, train_captions, gallery_size: int) -> dict:
    """Return every card metric for ``model`` on ``test_set`` (see the module docstring)."""
    clean = single_object_rows(test_set, clean_only=True)
    every = single_object_rows(test_set, clean_only=False)
    metrics = {
        "zero_shot_template": ZERO_SHOT_TEMPLATE,
        "zero_shot_images": len(clean),
        "zero_shot_accuracy": zero_shot_accuracy(model, processor, test_set, clean, ZERO_SHOT_TEMPLATE),
        "zero_shot_images_with_corrupted": len(every),
        "zero_shot_accuracy_with_corrupted": zero_shot_accuracy(model, processor, test_set, every, ZERO_SHOT_TEMPLATE),
    }
    metrics.update(recall_at_k(model, processor, test_set, gallery_size))
    metrics["unseen_phrasings"] = unseen_phrasing_check(model, processor, test_set, clean, train_captions)
    return metrics


# Earlier runs, by zero-shot accuracy on the clean single-object validation scenes. Columns: batches,
# training scenes, auxiliary loss, start of the patch filters, swapped-caption negatives, steps, lr, result.
EARLIER_RUNS = """| random, 128 | 20,000 | none | default | no | 1,500 | 1e-03 | 32.8 % (test: 35.6 %) |
| colour groups of 32, 128 | 20,000 | none | default | no | 1,000 | 1e-03 | 26.4 % |
| colour groups of 16, 64 | 20,000 | none | default | no | 1,600 | 2e-03 | 27.0 % |
| colour groups of 16, 64 | 20,000 | colours and shapes present, weight 1 | default | no | 1,200 | 1e-03 | 23.0 % |
| colour groups of 16, 64 | 20,000 | colours and shapes present, weight 1 | default | no | 1,200 | 2e-03 | 25.3 % |
| random, 128 | 20,000 | none | edges | no | 2,700 of 3,000 (stopped) | 1e-03 | 39.1 % at step 2,500 |
| random, 128 | 20,000 | none | edges | yes | 1,100 of 3,000 (stopped) | 1e-03 | 31.0 % at step 1,000 |
| random, 128 | 20,000 | grid probe, weight 1 | edges | yes | 3,000 | 1e-03 | 54.0 % (test: 62.1 %) |
| random, 128 | 50,000 | grid probe, weight 1 | edges | yes | 3,000 | 1e-03 | 62.1 % (test: 64.3 %) |"""


def _auxiliary_name(metrics: dict) -> str:
    """Return the settings table's name for the run's auxiliary losses."""
    names = [f"{name}, weight {metrics[key]:g}"
             for name, key in (("grid probe", "grid_probe_weight"), ("presence probe", "presence_probe_weight"))
             if metrics.get(key)]
    return " + ".join(names) or "none"


def _this_run_row(metrics: dict) -> str:
    """Return the settings table's row for the run behind ``metrics``."""
    filters = "edges" if metrics.get("edge_filter_share") else "default"
    swapped = "yes" if metrics.get("swapped_negatives") else "no"
    return (
        f"| random, {metrics['batch_size']} (this run) | {metrics['train_scenes']:,} | {_auxiliary_name(metrics)} | {filters} | {swapped} "
        f"| {metrics['max_steps']:,} | {metrics['learning_rate']:.0e} | {100 * metrics['validation_zero_shot_accuracy']:.1f} % "
        f"(test: {100 * metrics['zero_shot_accuracy']:.1f} %) |"
    )


def _loss_description(metrics: dict) -> str:
    """Return the card paragraph on the loss and the start of the run behind ``metrics``."""
    lines = [
        "The loss is CLIP's symmetric cross-entropy with one change: when a caption fits several",
        'images of the batch (synthetic scenes repeat, for example "a red circle"), those images',
        "share the target instead of counting as negatives. Batches are drawn at random.",
    ]
    if metrics.get("swapped_negatives"):
        lines += [
            "Each image also meets a hard negative in the image-to-text loss: its own caption with one",
            'colour or shape word swapped for one the scene lacks ("a red circle" becomes "a red star"),',
            "as in NegCLIP (Yuksekgonul et al., 2023). Random batches rarely need the shape word, so",
            "without these negatives the text tower learned to ignore it.",
        ]
    if metrics.get("grid_probe_weight"):
        lines += [
            f"An auxiliary loss (weight {metrics['grid_probe_weight']:g}) trains a linear grid probe to read the shape and colour",
            "in each cell of the 3x3 grid from the pooled patch tokens of uncorrupted images",
            "(`mini_training.GridProbe`, shared with mini-blip). It gives the vision tower a direct shape",
            "signal and is discarded after training.",
        ]
    if metrics.get("presence_probe_weight"):
        lines += [
            f"A second auxiliary loss (weight {metrics['presence_probe_weight']:g}) trains a linear presence probe to read,",
            "from the pooled image vector of each uncorrupted image, which of the 24 colour-shape pairs it contains",
            "(`mini_training.PresenceProbe`, one binary cross-entropy per pair). Zero-shot classification",
            "reads that vector, so the probe asks it to keep the pairs linearly apart. It is discarded too.",
        ]
    if metrics.get("edge_filter_share"):
        lines += [
            f"The vision tower's patch filters start as edge detectors: {metrics['edge_filter_share']:.0%} of them are drawn",
            f"with std {metrics['edge_filter_std']:g} and made zero-mean over each 8x8 patch and colour channel",
            "(`mini_training.edge_initialize`), so they ignore flat backgrounds and respond to outlines.",
        ]
    return "\n".join(lines)


def _status_line(metrics: dict) -> str:
    """Return a card bullet that flags a zero-shot accuracy below the course's 90 % bar, else ""."""
    if metrics["zero_shot_accuracy"] >= 0.9:
        return ""
    return (
        f"- NOTE: zero-shot accuracy ({metrics['zero_shot_accuracy']:.1%}) is below the course's 90 % bar "
        "because the model often confuses shapes, while it names the colour of clean single objects right.\n"
    )


def write_card(folder: Path, metrics: dict) -> None:
    """Write the model card ``README.md`` of mini-clip from ``metrics``."""
    phrasing_rows = "\n".join(
        f"| `{template}` | {result['accuracy']:.1%} |" for template, result in metrics["unseen_phrasings"].items()
    )
    card = f"""# mini-clip

A small `CLIPModel` trained for the course's offline (`mini`) profile. It stands in
for `openai/clip-vit-base-patch32` in notebook 05 and loads with the same classes:
`CLIPModel`, `CLIPProcessor`, `CLIPTokenizer` (or `CLIPTokenizerFast`) and
`CLIPImageProcessor`. It knows only the course's synthetic scenes of coloured
shapes; photos or everyday words give meaningless similarities.

## Architecture

- Vision tower: ViT with 8x8 patches on 64x64 RGB images (64 patches + class token),
  3 layers, hidden size 128, 4 heads, MLP 256.
- Text tower: causal transformer, 3 layers, hidden size 128, 4 heads, MLP 512,
  at most 48 tokens; the embedding is read at the `<|endoftext|>` token, as in CLIP.
- Both project to a shared 128-d space; learned temperature, capped at 100 like CLIP.
- {metrics['parameters']:,} parameters, stored as float32 safetensors.
- Tokenizer: byte-level BPE in CLIP's format (`vocab.json`, `merges.txt`), with CLIP's
  normalizer, pre-tokenizer and special tokens; {metrics['vocab_size']} tokens learned from the
  training captions with the `tokenizers` library. Any text tokenizes, because every byte has a
  token, but words the captions never use have untrained embeddings.
- Image processor: resize the short side to 64 (bicubic), centre crop 64x64, OpenAI CLIP mean/std.

## Data

`course_utils.data.shapes.load_captioned_shapes`: {metrics['train_scenes']:,} training scenes
(seed 0) of one to three coloured shapes (6 colours, 4 shapes, 3 sizes, 9 positions, 4
backgrounds), each with 4 captions that vary templates, synonyms ("crimson disc") and word order.
In 30 % of scenes every caption leaves out colour or shape, and 30 % of images are occluded or faded. Each step
draws one caption per image. Evaluation uses the test split ({metrics['test_scenes']:,} scenes).

## Training

```
{metrics['command']}
```

Seed {metrics['seed']}, {metrics['max_steps']} AdamW steps of {metrics['batch_size']} pairs (lr {metrics['learning_rate']:g}, warm-up then cosine
decay, weight decay 0.1), {metrics['threads']} CPU thread(s): {metrics['train_minutes']:.1f} minutes on the course
development machine (2 CPU cores).

{_loss_description(metrics)}

Settings tried, by zero-shot accuracy on the clean single-object scenes of the validation split
(the first run was scored on test only at first, which exposed the shape problem):

| batches | training scenes | auxiliary loss | patch filters | swapped negatives | steps | lr | validation zero-shot |
|---|---|---|---|---|---|---|---|
{EARLIER_RUNS}
{_this_run_row(metrics)}

The first runs chose every colour right and shapes near chance. "A red circle" and "a red square"
embedded almost alike (cosine 0.997). A logistic-regression probe read the shape of clean single
objects from the image embeddings only 37 % of the time (chance 25 %, the most common shape 35 %).
A diagnostic on the same scenes trained a vision tower of this size to classify the shape of clean
single objects, supervised, for 300 steps of 64 images. It reached 35 % with the default start of
the patch filters and 75 % with the edge start. A three-layer CNN reached 98 % in 400 steps.
A ViT has no built-in notion of edges, and these outlines are a few pixels wide.
Run for 1,500 steps, the same diagnostic showed the tower overfitting. With 8,000 training scenes
it was right on 98 % of its training batches but on 81 % of validation scenes. With 40,000 scenes,
it was right on 93 %. The training set therefore grew from 20,000 scenes to 50,000, the generator's maximum.
With the presence probe added, validation zero-shot at step 1,000 rose from 35.6 % to 67.2 %.
An early run with a similar loss (colours and shapes present, read separately) had not helped,
but it had the default filter start and 20,000 scenes, and it did not ask for the pairs.

## Metrics (test split)

| metric | value |
|---|---|
| zero-shot accuracy, 24 prompts `{metrics['zero_shot_template']}`, {metrics['zero_shot_images']} clean single-object scenes | {metrics['zero_shot_accuracy']:.1%} |
| same, {metrics['zero_shot_images_with_corrupted']} single-object scenes including occluded and faded ones | {metrics['zero_shot_accuracy_with_corrupted']:.1%} |
| text to image recall@1 / @5 (detailed captions, gallery of {metrics['retrieval_gallery']}) | {metrics['text_to_image_recall@1']:.1%} / {metrics['text_to_image_recall@5']:.1%} |
| image to text recall@1 / @5 (same gallery) | {metrics['image_to_text_recall@1']:.1%} / {metrics['image_to_text_recall@5']:.1%} |

Chance is 1/24 = 4.2 % for zero-shot and 0.1 % / 0.5 % for recall@1 / @5. Recall counts only the
scene a caption was written for, although another scene may fit it as well, so it understates
retrieval quality. Occluded scenes hide the shape and faded ones the colour, which explains the
lower figure with corrupted scenes.

Phrasings that no training caption uses, with words that the captions do use (zero-shot accuracy
on the same clean single-object scenes):

| prompt template | accuracy |
|---|---|
{phrasing_rows}

## Limits

{_status_line(metrics)}- It was trained only on six colours, four shapes, three sizes, nine positions and four
  backgrounds drawn by the course's generator.
- Positions, sizes, counts and scenes with several objects were not evaluated on their own;
  recall@k above is the only figure that covers them.
- 64x64 pixels and 48 tokens at most; longer text is truncated.

Regenerate this folder with `make models` or the command above.
"""
    (Path(folder) / "README.md").write_text(card)
