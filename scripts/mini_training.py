"""Shared plumbing for the ``train_mini_*.py`` scripts: arguments, seeding, schedules, probes, metrics.

Training code lives under ``scripts/`` so that notebooks never import it; the
notebooks only load the saved folders through ``course_utils.registry``.
"""

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Let `python scripts/train_mini_x.py` import course_utils without an editable install.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def build_parser(description: str, default_output_dir: Path, default_max_steps: int) -> argparse.ArgumentParser:
    """Return an argument parser with the options every training script shares.

    Options: ``--max-steps`` (optimizer steps), ``--output-dir`` (model folder),
    ``--seed``, ``--threads`` (torch CPU threads) and ``--limit`` (cap on the
    examples loaded per split, for smoke tests; 0 means no cap).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--max-steps", type=int, default=default_max_steps,
                        help=f"number of optimizer steps (default {default_max_steps})")
    parser.add_argument("--output-dir", type=Path, default=default_output_dir,
                        help=f"folder to write the model, processor and card to (default {default_output_dir})")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random draw (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1, because the course machines are shared)")
    parser.add_argument("--limit", type=int, default=0,
                        help="load at most this many examples per split; 0 loads all (default 0)")
    return parser


def validate_args(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for option values that cannot work."""
    if args.max_steps < 1:
        raise ValueError(f"--max-steps must be at least 1, got {args.max_steps}.")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}.")
    if args.limit < 0:
        raise ValueError(f"--limit must be 0 (no cap) or positive, got {args.limit}.")


def set_up_run(seed: int, threads: int, device: torch.device | None = None) -> None:
    """Seed Python's and torch's global generators, keep the Hub offline and cap torch's CPU threads.

    NumPy code in these scripts uses explicit ``np.random.default_rng(seed)`` generators instead.
    On a CUDA ``device`` some kernels (attention's backward pass among them) have no
    deterministic version, so there torch warns about them instead of stopping, and a
    rerun can differ in the last digits.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)
    on_cuda = device is not None and device.type == "cuda"
    if on_cuda:
        # cuBLAS picks deterministic algorithms only with a fixed workspace, set before its first call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Deterministic kernels make a rerun with the same seed give the same weights on CPU.
    torch.use_deterministic_algorithms(True, warn_only=on_cuda)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` to ``parser``: the torch device of the training steps (default ``cpu``)."""
    parser.add_argument("--device", default="cpu",
                        help="torch device of the training steps: cpu (default) or cuda; the evaluation, "
                             "and so the card's figures, always run on the CPU")


def training_device(name: str) -> torch.device:
    """Return the torch device that ``--device name`` requests, or raise ``ValueError`` naming a usable one.

    Random draws stay on CPU generators whatever the device, so a CUDA run sees the
    same batches, noise and timesteps as a CPU run with the same seed.

    NOTE: the cuda path of the two Stable Diffusion scripts has not run on a GPU yet. A test
    runs their training loops on the meta device, which catches most batches left on the
    CPU. On a first GPU, run their smoke settings (``--max-steps 2 --limit 32 --no-eval
    --device cuda``) before a full training run.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device; pass cpu or cuda.") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: the training scripts run on cpu or cuda only; pass one of them.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: no CUDA GPU found (torch.cuda.is_available() is False); "
                         f"pass --device cpu.")
    return device


def limit_rows(dataset, limit: int):
    """Return the first ``limit`` rows of a ``datasets.Dataset`` (all rows when ``limit`` is 0)."""
    if limit and limit < len(dataset):
        return dataset.select(range(limit))
    return dataset


def batch_indices(num_examples: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield index batches forever, reshuffling at each epoch and dropping the ragged last batch.

    When ``num_examples`` is smaller than ``batch_size`` the batch is the whole set.
    """
    batch_size = min(batch_size, num_examples)
    while True:
        order = torch.randperm(num_examples, generator=generator)
        for start in range(0, num_examples - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def warmup_cosine(step: int, max_steps: int, warmup_steps: int) -> float:
    """Return the learning-rate factor at ``step``: linear warm-up, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, max_steps: int, warmup_steps: int):
    """Return AdamW and its warm-up-cosine scheduler; biases and norms get no weight decay."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
    )
    warmup_steps = min(warmup_steps, max(1, max_steps // 10))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, max_steps, warmup_steps)
    )
    return optimizer, scheduler


#: Share of a ViT's patch-embedding filters that start zero-mean, and every filter's starting std.
#: Chosen by the shape diagnostic that the mini-clip card describes.
EDGE_FILTER_SHARE = 0.9
EDGE_FILTER_STD = 0.1


def edge_initialize(patch_embedding: torch.nn.Conv2d, share: float = EDGE_FILTER_SHARE,
                    std: float = EDGE_FILTER_STD) -> None:
    """Redraw a ViT's patch-embedding filters so that most of them start as edge detectors.

    Every filter is drawn from N(0, ``std``); the first ``share`` of them then
    lose their mean over the patch, separately for each colour channel. A
    zero-mean filter gives the same output on a flat background of any colour
    and responds only where the patch contains an edge, so from the first step
    the tokens show where outlines are and which colours they separate. With
    the libraries' default start (std 0.02, means kept) the course's ViTs
    learned colour at once but shape hardly at all. Draws from torch's global
    generator, which :func:`set_up_run` seeds.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1], got {share}.")
    weight = patch_embedding.weight
    with torch.no_grad():
        weight.normal_(0.0, std)
        edges = int(round(weight.shape[0] * share))
        weight[:edges] -= weight[:edges].mean(dim=(2, 3), keepdim=True)


def grid_targets(rows) -> torch.Tensor:
    """Return (N, 2, 9) class targets per 3x3 grid cell: shape (0 empty, 1-4) and colour (0 empty, 1-6)."""
    from course_utils.data.shapes import COLORS, POSITIONS, SHAPES

    targets = torch.zeros(len(rows), 2, len(POSITIONS), dtype=torch.long)
    for i, row in enumerate(rows):
        for color, shape, position in zip(row["colors"], row["shapes"], row["positions"], strict=True):
            cell = POSITIONS.index(position)
            targets[i, 0, cell] = SHAPES.index(shape) + 1
            targets[i, 1, cell] = COLORS.index(color) + 1
    return targets


class GridProbe(torch.nn.Module):
    """Auxiliary training head: predicts each 3x3 cell's shape and colour from the patch tokens.

    A dense, direct signal that teaches the vision encoder shapes and positions far
    faster than the image-text losses alone. It is discarded after training.
    """

    def __init__(self, width: int, num_shapes: int = 5, num_colors: int = 7):
        super().__init__()
        self.num_shapes = num_shapes
        self.linear = torch.nn.Linear(width, num_shapes + num_colors)

    def loss(self, image_embeds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the summed cross-entropy of shape and colour over the 9 cells."""
        patches = image_embeds[:, 1:]  # (B, P, D) without the class token
        side = int(patches.shape[1] ** 0.5)
        grid = patches.transpose(1, 2).reshape(len(patches), -1, side, side)
        cells = F.adaptive_avg_pool2d(grid, 3).flatten(2).transpose(1, 2)  # (B, 9, D)
        logits = self.linear(cells)
        shape_loss = F.cross_entropy(logits[..., : self.num_shapes].transpose(1, 2), targets[:, 0])
        color_loss = F.cross_entropy(logits[..., self.num_shapes :].transpose(1, 2), targets[:, 1])
        return shape_loss + color_loss


def presence_targets(rows) -> torch.Tensor:
    """Return (N, colours x shapes) multi-hot targets: 1 where the scene contains that colour-shape pair.

    Column ``c * len(SHAPES) + s`` is colour ``COLORS[c]`` and shape ``SHAPES[s]``,
    the order of the 24 zero-shot prompts.
    """
    from course_utils.data.shapes import COLORS, SHAPES

    targets = torch.zeros(len(rows), len(COLORS) * len(SHAPES))
    for i, row in enumerate(rows):
        for color, shape in zip(row["colors"], row["shapes"], strict=True):
            targets[i, COLORS.index(color) * len(SHAPES) + SHAPES.index(shape)] = 1.0
    return targets


class PresenceProbe(torch.nn.Module):
    """Auxiliary training head: reads which colour-shape pairs a scene contains from its pooled image vector.

    Zero-shot classification compares the pooled (then projected) vector with one
    text vector per colour-shape pair, so it works only if that vector keeps the
    pairs linearly apart. This probe trains for exactly that, with one binary
    cross-entropy per pair. It is discarded after training.
    """

    def __init__(self, width: int, num_pairs: int = 24):
        super().__init__()
        self.linear = torch.nn.Linear(width, num_pairs)

    def loss(self, pooled: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the binary cross-entropy summed over the pairs and averaged over the images; ``pooled`` is (B, width).

        Summing over pairs keeps the loss on the scale of the grid probe's. A mean over
        the 24 pairs, most of them absent, would scale the signal down 24-fold.
        """
        errors = F.binary_cross_entropy_with_logits(self.linear(pooled), targets, reduction="none")
        return errors.sum(dim=1).mean()


class PatchPositionProbe(torch.nn.Module):
    """Auxiliary training head: predicts the grid row and column of every patch token from the token.

    The encoder adds position embeddings only at its input, and no other loss
    depends on them, so its output tokens can lose where they sit. A question like
    "where is the red star?" needs exactly that: the answer reads the position of
    the tokens it attends to. It is discarded after training.
    """

    def __init__(self, width: int, side: int):
        super().__init__()
        self.side = side
        self.linear = torch.nn.Linear(width, 2 * side)

    def loss(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Return the cross-entropy of row plus column, averaged over patches; ``image_embeds`` is (B, 1 + side^2, D)."""
        patches = image_embeds[:, 1:]
        if patches.shape[1] != self.side**2:
            raise ValueError(
                f"Invalid token count: {patches.shape[1]} patch tokens after the class token, expected "
                f"{self.side**2}. Build the probe with side = image size / patch size."
            )
        logits = self.linear(patches)  # (B, P, 2 * side)
        index = torch.arange(self.side**2, device=patches.device).expand(len(patches), -1)
        rows, cols = index // self.side, index % self.side
        row_loss = F.cross_entropy(logits[..., : self.side].transpose(1, 2), rows)
        col_loss = F.cross_entropy(logits[..., self.side :].transpose(1, 2), cols)
        return row_loss + col_loss


def count_parameters(model: torch.nn.Module) -> int:
    """Return the number of parameters of ``model``."""
    return sum(param.numel() for param in model.parameters())


def folder_size_mb(folder: Path) -> float:
    """Return the total size of the files directly inside ``folder``, in MB (10^6 bytes)."""
    return sum(path.stat().st_size for path in Path(folder).iterdir() if path.is_file()) / 1e6


def check_safetensors_only(folder: Path) -> None:
    """Raise ``RuntimeError`` when ``folder`` contains pickled weights (``.bin``, ``.pt``, ``.pth``, ``.ckpt``)."""
    pickles = [path.name for path in Path(folder).iterdir() if path.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
    if pickles:
        raise RuntimeError(f"{folder} contains pickled weight files {pickles}. Save with safetensors only.")


def probe_accuracy(
    train_features: np.ndarray,
    train_labels: Sequence[int],
    test_features: np.ndarray,
    test_labels: Sequence[int],
    c: float = 1.0,
) -> float:
    """Return the test accuracy (0-1) of the course's linear probe, as the lessons measure it.

    The same probe scores every embedding and baseline, so their accuracies compare directly.
    """
    from course_utils.probes import probe_accuracy as course_probe_accuracy

    return course_probe_accuracy(train_features, train_labels, test_features, test_labels, C=c)


class Stopwatch:
    """Wall-clock timer for the card's "training time" line."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def minutes(self) -> float:
        """Return the minutes elapsed since construction."""
        return (time.perf_counter() - self.start) / 60.0


def log(message: str) -> None:
    """Print a progress line immediately, so logs of background runs stay current."""
    print(message, flush=True)


def optimizer_step(loss: torch.Tensor, optimizer, scheduler, clip_parameters=None, max_norm: float = 1.0) -> None:
    """Back-propagate ``loss`` and take one optimizer and learning-rate step.

    Args:
        clip_parameters: Parameters whose gradient norm is clipped to ``max_norm`` before
            the step; None skips clipping.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_parameters is not None:
        torch.nn.utils.clip_grad_norm_(clip_parameters, max_norm)
    optimizer.step()
    scheduler.step()


class LossLog:
    """Running means of named training losses, kept and printed every ``every`` steps and at the last step.

    ``history`` is the list the cards and ``training_metrics.json`` show: one
    ``{"step": step, name: mean, ...}`` entry per block, means rounded to ``digits`` places.
    """

    def __init__(self, steps: int, label: str = "", digits: int = 5, every: int = 100) -> None:
        self.steps, self.label, self.digits, self.every = steps, label, digits, every
        self.history: list[dict] = []
        self._sums: dict[str, float] = {}

    def add(self, step: int, **losses: float) -> None:
        """Add this ``step``'s losses (1-based); close the block at a multiple of ``every`` or the last step."""
        for name, value in losses.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value)
        if step % self.every == 0 or step == self.steps:
            count = self.every if step % self.every == 0 else step % self.every
            means = {name: total / count for name, total in self._sums.items()}
            self.history.append({"step": step, **{name: round(mean, self.digits) for name, mean in means.items()}})
            figures = " ".join(f"{name}={mean:.{self.digits}f}" for name, mean in means.items())
            log(f"{self.label} step {step}/{self.steps} {figures}".strip())
            self._sums = {}


def write_metrics(folder: Path, metrics: dict) -> None:
    """Write ``metrics`` to ``<folder>/training_metrics.json`` (read by the card, not by notebooks)."""
    (Path(folder) / "training_metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """Return the command that reproduces this run, for the model card."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([".venv/bin/python", f"scripts/{script}", *args]).strip()


def finish_run(folder: Path, metrics: dict, write_card, clock: "Stopwatch") -> dict:
    """Check a saved model folder, write its metrics and card, and log its size and time.

    Args:
        folder: The folder the model and its processor were just saved to.
        metrics: Training and evaluation figures, written to ``training_metrics.json``.
        write_card: ``write_card(folder, metrics)`` writes the model card ``README.md``.
        clock: The run's :class:`Stopwatch`.

    Returns:
        ``metrics``, so a script can end with ``return finish_run(...)``.
    """
    check_safetensors_only(folder)
    write_metrics(folder, metrics)
    write_card(folder, metrics)
    log(f"saved to {folder} ({folder_size_mb(folder):.1f} MB) in {clock.minutes():.1f} min")
    return metrics
