"""Train the course's mini CLIP (``data/models/mini-clip``) on the captioned-shapes scenes.

The script learns a CLIP byte-pair tokenizer from the training captions and
builds a small ``CLIPModel`` (64x64 images, texts of at most 48 tokens). It
trains the model with the contrastive loss and evaluates it on the test split.
Then it saves model, processor, ``training_metrics.json`` and the model card.

Run from the repository root::

    .venv/bin/python scripts/train_mini_clip.py
"""

import random
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import blip_tasks  # noqa: E402  (needs the scripts folder on sys.path)
import clip_eval  # noqa: E402
import mini_training as mt  # noqa: E402
from clip_tokenizer import train_bpe, write_vocab_files  # noqa: E402

IMAGE_SIZE = 64
# The maximum training caption length (three objects, each with size and position) is 45 tokens.
MAX_TEXT_LENGTH = 48
DEFAULT_OUTPUT = mt.REPO_ROOT / "data" / "models" / "mini-clip"
DEFAULT_MAX_STEPS = 3000
BATCH_SIZE = 128
# Give each image a hard negative caption: its own caption with one colour or shape word swapped
# for one the scene lacks, as NegCLIP does. Without it "a red circle" and "a red square" embedded
# almost alike (cosine above 0.99), because random batches rarely need the shape word.
SWAPPED_NEGATIVES = True
# Weight of the auxiliary loss of mini_training.GridProbe, which reads the shape and colour of each
# 3x3 cell from the patch tokens of uncorrupted images. 0 turns it off, and the probe is never saved.
GRID_PROBE_WEIGHT = 1.0
# Weight of the auxiliary loss of mini_training.PresenceProbe, which reads the colour-shape pairs
# of uncorrupted images from the pooled image vector that zero-shot classification uses. 0 turns it off.
PRESENCE_PROBE_WEIGHT = 1.0
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.1
WARMUP_STEPS = 100
TRAIN_SCENES = 50_000
# More test scenes than the loader's default 500, so that zero-shot accuracy rests on ~700 images.
TEST_SCENES = 2000
# Test images scored for recall@k; a fixed gallery keeps the figure comparable between runs.
RETRIEVAL_GALLERY = 1000


def build_tokenizer(captions: list[str]):
    """Return a ``CLIPTokenizer`` whose byte-pair vocabulary is learned from ``captions``."""
    from transformers import CLIPTokenizer

    vocab, merges = train_bpe(captions)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TEXT_LENGTH), vocab, merges


def build_processor(tokenizer):
    """Return the ``CLIPProcessor``: 64x64 bicubic resize and centre crop, OpenAI CLIP normalization."""
    from transformers import CLIPImageProcessor, CLIPProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_model(tokenizer):
    """Return an untrained ``CLIPModel``: 3-layer 128-d text and vision towers, 8x8 patches, 128-d embeddings."""
    from transformers import CLIPConfig, CLIPModel

    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "intermediate_size": 512,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_TEXT_LENGTH,
        "projection_dim": 128,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "image_size": IMAGE_SIZE,
        "patch_size": 8,
        "projection_dim": 128,
    }
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=128)
    return CLIPModel(config)


def pixel_tensor(processor, images, batch_size: int = 256) -> torch.Tensor:
    """Return the processed pixels of ``images`` as one float tensor of shape (N, 3, 64, 64)."""
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = processor.image_processor(images[start : start + batch_size], return_tensors="pt")
        chunks.append(chunk["pixel_values"])
    return torch.cat(chunks)


class CaptionTable:
    """Every caption of a split, tokenized once, plus which captions describe which image.

    ``ids`` and ``mask`` have one row per distinct caption, and ``image_captions[i]``
    is the list of rows that describe image ``i``. Two images share a row when one
    caption fits both, which the loss below counts as a second positive.
    """

    def __init__(self, tokenizer, captions_per_image: list[list[str]]):
        index: dict[str, int] = {}
        self.image_captions = []
        for captions in captions_per_image:
            self.image_captions.append([index.setdefault(text, len(index)) for text in captions])
        self.texts = list(index)
        self.tokenizer = tokenizer
        encoded = tokenizer(self.texts, padding="max_length", truncation=True,
                            max_length=MAX_TEXT_LENGTH, return_tensors="pt")
        self.ids = encoded["input_ids"]
        self.mask = encoded["attention_mask"]
        self._sets = [frozenset(rows) for rows in self.image_captions]

    def sample(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return one caption row per image in ``images``, drawn uniformly from its captions."""
        picks = []
        for image in images.tolist():
            rows = self.image_captions[image]
            picks.append(rows[int(torch.randint(len(rows), (1,), generator=generator))])
        return torch.tensor(picks)

    def targets(self, images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Return the (text, image) soft-target matrix: uniform over the images each caption describes."""
        rows_list = rows.tolist()
        match = torch.tensor(
            [[row in self._sets[image] for image in images.tolist()] for row in rows_list],
            dtype=torch.float32,
        )
        return match / match.sum(dim=1, keepdim=True)


def contrastive_loss(
    logits_per_text: torch.Tensor, targets: torch.Tensor, hard_negative_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """Return CLIP's symmetric cross-entropy with soft targets.

    Synthetic scenes repeat: two images in a batch can both be "a red circle".
    Hard one-hot targets would push such a caption away from a correct image,
    so every image a caption describes shares the target mass.

    ``hard_negative_logits`` (one per image, or None) adds a column to each
    image's row of the image-to-text loss: the logit of a caption known to be
    wrong for that image. Use a large negative value where an image has none.
    """
    text_loss = torch.nn.functional.cross_entropy(logits_per_text, targets)
    image_logits = logits_per_text.t()
    image_targets = targets.t() / targets.t().sum(dim=1, keepdim=True)
    if hard_negative_logits is not None:
        image_logits = torch.cat([image_logits, hard_negative_logits[:, None]], dim=1)
        image_targets = torch.cat([image_targets, torch.zeros_like(hard_negative_logits)[:, None]], dim=1)
    image_loss = torch.nn.functional.cross_entropy(image_logits, image_targets)
    return (text_loss + image_loss) / 2


def swapped_captions(table: CaptionTable, images: torch.Tensor, rows: torch.Tensor, scenes: list[dict],
                     rng: random.Random) -> list[str | None]:
    """Return each image's sampled caption with one colour or shape word swapped for one its scene lacks.

    An entry is None when the caption names no colour or shape (a vague caption
    such as "a small shape"). ``scenes[i]`` holds the ``colors`` and ``shapes`` of image ``i``.
    """
    return [
        blip_tasks.mismatch_caption(table.texts[row], scenes[image], rng)
        for image, row in zip(images.tolist(), rows.tolist(), strict=True)
    ]


# A finite stand-in for minus infinity: a zero target times -inf would give NaN in cross_entropy.
_NO_NEGATIVE = -1e4


def batch_logits(model, table: CaptionTable, images: torch.Tensor, rows: torch.Tensor, pixels: torch.Tensor,
                 negatives: list[str | None] | None):
    """Run ``model`` on one batch; return its logits for the true captions, the hard-negative logits and the vision output.

    The hard-negative logits are None when ``negatives`` is None. The vision
    output holds the patch tokens (``last_hidden_state``, (batch, 1 + patches,
    width)) and the pooled class token (``pooler_output``, (batch, width)).

    The swapped captions ride along in the same forward pass. Each image is
    scored only against its own swapped caption, because another image's
    swapped caption might describe it truly.
    """
    ids, mask = table.ids[rows], table.mask[rows]
    with_negative = [] if negatives is None else [i for i, text in enumerate(negatives) if text is not None]
    if with_negative:
        encoded = table.tokenizer([negatives[i] for i in with_negative], padding="max_length", truncation=True,
                                  max_length=MAX_TEXT_LENGTH, return_tensors="pt")
        ids = torch.cat([ids, encoded["input_ids"]])
        mask = torch.cat([mask, encoded["attention_mask"]])
    # Trim the padding that no caption of this batch needs; it only costs time.
    length = int(mask.sum(dim=1).max())
    out = model(input_ids=ids[:, :length], attention_mask=mask[:, :length], pixel_values=pixels[images])
    batch = len(images)
    vision = out.vision_model_output
    if negatives is None:
        return out.logits_per_text, None, vision
    hard = torch.full((batch,), _NO_NEGATIVE)
    if with_negative:
        image_index = torch.tensor(with_negative)
        hard = hard.index_put((image_index,), out.logits_per_text[batch + torch.arange(len(with_negative)), image_index])
    return out.logits_per_text[:batch], hard, vision


def train(model, pixels: torch.Tensor, table: CaptionTable, train_set, args, check=None) -> list[float]:
    """Train ``model`` in place for ``args.max_steps`` steps and return the loss every 50 steps.

    The loss is :func:`contrastive_loss`, with swapped-caption hard negatives
    when :data:`SWAPPED_NEGATIVES` is set, plus :data:`GRID_PROBE_WEIGHT` times
    the loss of a grid probe on the patch tokens of the uncorrupted images, plus
    :data:`PRESENCE_PROBE_WEIGHT` times that of a presence probe on their pooled vectors.
    ``check``, when given, is called with the model every 500 steps and its
    result logged (the script passes validation zero-shot accuracy).
    """
    generator = torch.Generator().manual_seed(args.seed)
    trainable = model
    width = model.config.vision_config.hidden_size
    probes = {}
    if GRID_PROBE_WEIGHT > 0:
        probes["grid_probe"] = mt.GridProbe(width)
        grid = mt.grid_targets(train_set.select_columns(["colors", "shapes", "positions"]))
    if PRESENCE_PROBE_WEIGHT > 0:
        probes["presence_probe"] = mt.PresenceProbe(width)
        presence = mt.presence_targets(train_set.select_columns(["colors", "shapes"]))
    if probes:
        trainable = torch.nn.ModuleDict({"clip": model, **probes})
        clean = torch.tensor([corruption == "none" for corruption in train_set["corruption"]])
    optimizer, scheduler = mt.make_optimizer(trainable, LEARNING_RATE, WEIGHT_DECAY, args.max_steps, WARMUP_STEPS)
    batches = mt.batch_indices(len(pixels), BATCH_SIZE, generator)
    rng = random.Random(args.seed)
    scenes = [{"colors": colors, "shapes": shapes}
              for colors, shapes in zip(train_set["colors"], train_set["shapes"], strict=True)]
    losses = []
    model.train()
    for step in range(args.max_steps):
        images = next(batches)
        rows = table.sample(images, generator)
        negatives = swapped_captions(table, images, rows, scenes, rng) if SWAPPED_NEGATIVES else None
        logits_per_text, hard, vision = batch_logits(model, table, images, rows, pixels, negatives)
        loss = contrastive_loss(logits_per_text, table.targets(images, rows), hard)
        grid_loss = presence_loss = torch.zeros(())
        if probes:
            keep = clean[images]
        if "grid_probe" in probes:
            grid_loss = probes["grid_probe"].loss(vision.last_hidden_state[keep], grid[images][keep])
            loss = loss + GRID_PROBE_WEIGHT * grid_loss
        if "presence_probe" in probes:
            presence_loss = probes["presence_probe"].loss(vision.pooler_output[keep], presence[images][keep])
            loss = loss + PRESENCE_PROBE_WEIGHT * presence_loss
        mt.optimizer_step(loss, optimizer, scheduler, trainable.parameters())
        # CLIP caps the learned temperature at 100 so the logits cannot blow up.
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        if step % 50 == 0 or step == args.max_steps - 1:
            losses.append(round(loss.item(), 4))
            mt.log(f"step {step:5d}  loss {loss.item():.4f}  grid {grid_loss.item():.4f}  "
                   f"presence {presence_loss.item():.4f}  lr {scheduler.get_last_lr()[0]:.2e}")
        if check is not None and step % 500 == 499:
            model.eval()
            mt.log(f"step {step:5d}  check {check(model)}")
            model.train()
    model.eval()
    return losses


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate and save mini-clip; return the metrics written to the card."""
    parser = mt.build_parser(__doc__.splitlines()[0], DEFAULT_OUTPUT, DEFAULT_MAX_STEPS)
    args = parser.parse_args(argv)
    mt.validate_args(args)
    mt.set_up_run(args.seed, args.threads)
    clock = mt.Stopwatch()

    from course_utils.data.shapes import load_captioned_shapes

    # The data seed stays at the loader's default 0, so every mini model trains on the same scenes.
    train_set = load_captioned_shapes("train", num_images=args.limit or TRAIN_SCENES)
    test_set = load_captioned_shapes("test", num_images=args.limit or TEST_SCENES)
    validation_set = load_captioned_shapes("validation", num_images=args.limit or None)
    mt.log(f"loaded {len(train_set)} training and {len(test_set)} test scenes")

    train_captions = train_set["captions"]
    tokenizer, vocab, merges = build_tokenizer([text for captions in train_captions for text in captions])
    processor = build_processor(tokenizer)
    model = build_model(tokenizer)
    mt.edge_initialize(model.vision_model.embeddings.patch_embedding)
    mt.log(f"vocabulary {len(tokenizer)} tokens, model {mt.count_parameters(model):,} parameters")

    pixels = pixel_tensor(processor, train_set["image"])
    table = CaptionTable(tokenizer, train_captions)
    validation_rows = clip_eval.single_object_rows(validation_set, clean_only=True)

    def validation_zero_shot(trained) -> str:
        accuracy = clip_eval.zero_shot_accuracy(
            trained, processor, validation_set, validation_rows, clip_eval.ZERO_SHOT_TEMPLATE
        )
        return f"validation zero-shot {accuracy:.3f}"

    losses = train(model, pixels, table, train_set, args, check=validation_zero_shot)
    train_minutes = clock.minutes()

    metrics = clip_eval.evaluate(model, processor, test_set, train_captions, gallery_size=RETRIEVAL_GALLERY)
    # Hyperparameters are compared on this figure, never on the test figures above.
    metrics["validation_zero_shot_accuracy"] = clip_eval.zero_shot_accuracy(
        model, processor, validation_set, validation_rows, clip_eval.ZERO_SHOT_TEMPLATE,
    )
    metrics.update(
        parameters=mt.count_parameters(model),
        vocab_size=len(tokenizer),
        train_scenes=len(train_set),
        test_scenes=len(test_set),
        max_steps=args.max_steps,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        swapped_negatives=SWAPPED_NEGATIVES,
        grid_probe_weight=GRID_PROBE_WEIGHT,
        presence_probe_weight=PRESENCE_PROBE_WEIGHT,
        edge_filter_share=mt.EDGE_FILTER_SHARE,
        edge_filter_std=mt.EDGE_FILTER_STD,
        seed=args.seed,
        threads=args.threads,
        train_minutes=round(train_minutes, 2),
        loss_every_50_steps=losses,
        command=mt.command_line("train_mini_clip.py", argv),
    )

    out = Path(args.output_dir)
    # Batched calls leave padding and truncation switched on in the fast backend. Switch both off,
    # so that tokenizer.json does not store them.
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_vocab_files(vocab, merges, out)
    return mt.finish_run(out, metrics, clip_eval.write_card, clock)


if __name__ == "__main__":
    main()
