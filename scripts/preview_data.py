"""Save preview grids of every mini data set to build/data_preview/, to check them by eye.

Writes shapes.png (images with their second caption), shapes_corrupted.png,
digits.png, photos.png, and for speech commands speech_waveforms.png and
speech_mel.png (three test clips per word, in rows by word).

Usage: ``OMP_NUM_THREADS=1 python scripts/preview_data.py [--out build/data_preview]``
"""

import argparse
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from course_utils.data import (  # noqa: E402
    load_captioned_shapes,
    load_digits,
    load_sample_photos,
    load_speech_commands,
)
from course_utils.data.speech_commands import WORDS  # noqa: E402
from course_utils.paths import COURSE_ROOT  # noqa: E402

CLIPS_PER_WORD = 3


def save_shapes(rows, path: Path, title: str) -> None:
    columns = 6
    lines = -(-len(rows) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(columns * 2.6, lines * 3.2))
    for ax, row in zip(axes.flat, rows, strict=False):
        ax.imshow(row["image"])
        caption = "\n".join(textwrap.wrap(row["captions"][1], 30))
        ax.set_title(f"{caption}\nlabel={row['label']} {row['corruption']}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_digits(path: Path) -> None:
    ds = load_digits("test", profile="mini")
    fig, axes = plt.subplots(4, 10, figsize=(10, 4.6))
    for ax, row in zip(axes.flat, ds.select(range(40)), strict=True):
        ax.imshow(row["image"], cmap="gray", vmin=0, vmax=255)
        ax.set_title(ds.features["label"].int2str(row["label"]), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_photos(path: Path) -> None:
    photos = load_sample_photos()
    fig, axes = plt.subplots(1, len(photos), figsize=(3 * len(photos), 3))
    for ax, (name, image) in zip(axes, photos.items(), strict=True):
        ax.imshow(image)
        ax.set_title(f"{name} {image.size[0]}x{image.size[1]}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def pick_clips(ds) -> dict[str, list[dict]]:
    """Take the first CLIPS_PER_WORD clips of each word, in WORDS order."""
    picked = {w: [] for w in WORDS}
    for index, label in enumerate(ds["label"]):
        word = WORDS[label]
        if len(picked[word]) < CLIPS_PER_WORD:
            picked[word].append(ds[index])
    return picked


def save_speech(waveform_path: Path, mel_path: Path) -> None:
    import librosa

    picked = pick_clips(load_speech_commands("test", profile="mini"))
    shape = (len(WORDS), CLIPS_PER_WORD)
    wave_fig, wave_axes = plt.subplots(*shape, figsize=(9, 14), sharex=True, sharey=True)
    mel_fig, mel_axes = plt.subplots(*shape, figsize=(9, 16), sharex=True, sharey=True)
    for line, word in enumerate(WORDS):
        for column, row in enumerate(picked[word]):
            samples, rate = row["audio"]["array"], row["audio"]["sampling_rate"]
            wave_axes[line, column].plot(np.arange(len(samples)) / rate, samples, linewidth=0.4)
            wave_axes[line, column].set_title(f"{word} | {row['speaker_id']}", fontsize=7)
            mel = librosa.feature.melspectrogram(y=samples, sr=rate, n_fft=512, hop_length=160, n_mels=64)
            mel_axes[line, column].imshow(
                librosa.power_to_db(mel, ref=np.max), origin="lower", aspect="auto", cmap="magma",
                extent=(0, len(samples) / rate, 0, 64),
            )
            mel_axes[line, column].set_title(f"{word} | {row['speaker_id']}", fontsize=7)
    wave_fig.supxlabel("time (s)")
    mel_fig.supxlabel("time (s)")
    mel_fig.supylabel("mel band (64 bands, 0-8 kHz)")
    for fig, path in ((wave_fig, waveform_path), (mel_fig, mel_path)):
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=COURSE_ROOT / "build" / "data_preview")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    shapes = load_captioned_shapes("train", num_images=300, profile="mini")
    save_shapes(list(shapes.select(range(24))), args.out / "shapes.png", "captioned shapes (train)")
    corrupted = [r for r in shapes if r["corruption"] != "none"][:18]
    save_shapes(corrupted, args.out / "shapes_corrupted.png", "occluded and faded images")
    save_digits(args.out / "digits.png")
    save_photos(args.out / "photos.png")
    save_speech(args.out / "speech_waveforms.png", args.out / "speech_mel.png")
    print(f"wrote previews to {args.out}")


if __name__ == "__main__":
    main()
