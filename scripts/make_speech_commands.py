"""Generate the mini speech-commands clips in data/speech_commands/ with espeak-ng.

Each speaker is an espeak-ng English accent combined with a voice variant
(``en-us+m3``) and a personal base pitch and speed. Every speaker says each
word of ``WORDS`` once. The word is placed at a random offset in a 1 s clip
and mixed with background noise (white, pink, brown, mains hum or reversed
babble) at a random signal-to-noise ratio. Voice variants are split between
train, validation and test, so the test speakers' voices are never heard in
training.

Writes ``clips/<word>/<speaker_id>.ogg`` (Ogg Vorbis, 16 kHz mono) and
``metadata.csv``. Re-running with the same seed, espeak-ng and libsndfile
versions rewrites byte-identical files: espeak-ng's output is deterministic, and
the random Ogg stream serial numbers are replaced by the clip's row number.

Needs the ``espeak-ng`` program (Debian: ``apt-get install espeak-ng``); the
course itself does not. Usage::

    OMP_NUM_THREADS=1 python scripts/make_speech_commands.py [--seed 0] [--out data/speech_commands]
"""

import argparse
import csv
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from course_utils.data.audio import fix_length, resample
from course_utils.data.speech_commands import METADATA_FILE, WORDS, mini_dir

SAMPLE_RATE = 16_000
#: espeak-ng 1.51 English accents (voice files under espeak-ng-data/voices/gmw).
ACCENTS = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
#: Speakers per split; each says every word once.
SPEAKERS = {"train": 120, "validation": 30, "test": 30}
#: Share of the voice variants given to each split.
VARIANT_SHARES = {"train": 0.7, "validation": 0.15, "test": 0.15}
NOISE_TYPES = ("white", "pink", "brown", "hum", "babble")
SNR_DB = (5.0, 30.0)
#: Babble is speech-like, so at 5 dB it masks the word; it starts at a higher SNR.
BABBLE_SNR_DB = (12.0, 30.0)
PEAK = (0.3, 0.9)
#: Vorbis quality knob of soundfile (0 = best, 1 = smallest); 0.9 keeps the set under 15 MB.
OGG_COMPRESSION = 0.9
#: Sentences for the babble noise. They avoid the command words, so babble never says a label.
BABBLE_TEXT = (
    "the weather was pleasant all week and the garden looked green",
    "she bought bread, cheese and apples at the market yesterday",
    "many people travel by train to the city every morning",
    "the museum opens at nine and closes late in summer",
    "a small boat sailed across the lake before the storm",
    "he forgot his keys at the office and had to wait",
)


def variant_names(espeak_data: Path) -> list[str]:
    """List espeak-ng's voice variants (the files of ``voices/!v``), sorted."""
    folder = espeak_data / "voices" / "!v"
    # Skip names with spaces ("Mr serious"), so speaker ids and file names need no quoting.
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name)
    if not names:
        raise SystemExit(f"No espeak-ng voice variants found in {folder}.")
    return names


def espeak_data_dir() -> Path:
    output = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    # The output reads "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/.../espeak-ng-data".
    return Path(output.split("Data at:")[1].strip())


def synthesize(text: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return float32 samples at SAMPLE_RATE."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return resample(samples, rate, SAMPLE_RATE)


def trim_silence(samples: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut the leading and trailing samples whose magnitude stays below ``threshold`` of the peak."""
    loud = np.nonzero(np.abs(samples) > threshold * np.abs(samples).max())[0]
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]  # avoid dividing by zero at DC
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return (noise / noise.std()).astype(np.float32)


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) with a little white noise, unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    base = rng.choice([50.0, 60.0])
    signal = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
                 for k in range(1, 6))
    signal = signal + 0.05 * rng.normal(size=n)
    return (signal / signal.std()).astype(np.float32)


def make_babble_pool(rng: np.random.Generator, variants: list[str], size: int = 8) -> list[np.ndarray]:
    """Make ``size`` tracks of three overlapping voices reading sentences backwards (unintelligible)."""
    pool = []
    for _ in range(size):
        voices = []
        for _ in range(3):
            voice = f"{rng.choice(ACCENTS)}+{rng.choice(variants)}"
            speech = synthesize(str(rng.choice(BABBLE_TEXT)), voice, int(rng.integers(30, 70)), 170)
            voices.append(speech[::-1])
        length = min(len(v) for v in voices)
        track = sum(v[:length] for v in voices)
        pool.append((track / track.std()).astype(np.float32))
    return pool


def noise_clip(kind: str, rng: np.random.Generator, n: int, babble: list[np.ndarray]) -> np.ndarray:
    if kind == "babble":
        track = babble[int(rng.integers(len(babble)))]
        start = int(rng.integers(0, max(len(track) - n, 1)))
        return fix_length(track[start:], n)
    if kind == "hum":
        return hum(rng, n)
    return colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])


def assign_speakers(rng: np.random.Generator, variants: list[str]) -> list[dict]:
    """Draw each split's speakers from its own share of the voice variants."""
    order = [variants[i] for i in rng.permutation(len(variants))]
    speakers, start = [], 0
    for split, share in VARIANT_SHARES.items():
        stop = len(order) if split == "test" else start + round(share * len(order))
        pool = order[start:stop]
        start = stop
        # Each (accent, variant) pair is one speaker; draw distinct pairs.
        pairs = [(a, v) for v in pool for a in ACCENTS]
        chosen = rng.choice(len(pairs), SPEAKERS[split], replace=False)
        for index in chosen:
            accent, variant = pairs[index]
            speakers.append(
                {
                    "split": split,
                    "speaker_id": f"{accent}+{variant}",
                    "pitch": int(rng.integers(20, 81)),
                    "speed": int(rng.integers(130, 191)),
                }
            )
    return speakers


def make_clip(word, speaker, rng, babble) -> tuple[np.ndarray, dict]:
    pitch = int(np.clip(speaker["pitch"] + rng.integers(-6, 7), 0, 99))
    speed = int(speaker["speed"] * rng.uniform(0.9, 1.1))
    speech = trim_silence(synthesize(word, speaker["speaker_id"], pitch, speed))
    # Leave at least 30 ms before the word; a word longer than the clip loses its end.
    speech = speech[: SAMPLE_RATE - 480]
    offset = int(rng.integers(480, SAMPLE_RATE - len(speech) + 1))
    clip = np.zeros(SAMPLE_RATE, np.float32)
    clip[offset : offset + len(speech)] = speech / np.abs(speech).max()
    kind = str(rng.choice(NOISE_TYPES))
    snr_db = float(rng.uniform(*(BABBLE_SNR_DB if kind == "babble" else SNR_DB)))
    # SNR is measured against the power of the word itself, not of the whole second.
    speech_power = float(np.mean(clip[offset : offset + len(speech)] ** 2))
    noise = noise_clip(kind, rng, SAMPLE_RATE, babble) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    mixed = clip + noise
    mixed *= rng.uniform(*PEAK) / np.abs(mixed).max()
    info = {"pitch": pitch, "speed_wpm": speed, "offset_s": round(offset / SAMPLE_RATE, 3),
            "duration_s": round(len(speech) / SAMPLE_RATE, 3), "noise": kind, "snr_db": round(snr_db, 1)}
    return mixed.astype(np.float32), info


def _ogg_crc_table() -> list[int]:
    # CRC-32 of the Ogg page format: polynomial 0x04C11DB7, not bit-reflected, initial value 0.
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_OGG_CRC_TABLE = _ogg_crc_table()


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """Rewrite the stream serial number of every Ogg page and fix the page checksums.

    libsndfile picks a random serial number for each Ogg stream, so without this
    two runs write the same samples into files with different bytes.
    """
    out = bytearray(data)
    position = 0
    while position < len(out):
        if out[position : position + 4] != b"OggS":
            raise ValueError(f"Expected an Ogg page at byte {position}; the file is not Ogg.")
        segments = out[position + 26]
        length = 27 + segments + sum(out[position + 27 : position + 27 + segments])
        out[position + 14 : position + 18] = serial.to_bytes(4, "little")
        out[position + 22 : position + 26] = bytes(4)
        crc = 0
        for byte in out[position : position + length]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[(crc >> 24) ^ byte]
        out[position + 22 : position + 26] = crc.to_bytes(4, "little")
        position += length
    return bytes(out)


def encode_ogg(samples: np.ndarray, serial: int) -> bytes:
    """Encode float32 samples as Ogg Vorbis with a fixed stream serial number."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="OGG", subtype="VORBIS",
                    compression_level=OGG_COMPRESSION)
    return set_ogg_serial(buffer.getvalue(), serial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=mini_dir())
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed; on Debian run `apt-get install espeak-ng`.")

    rng = np.random.default_rng(args.seed)
    variants = variant_names(espeak_data_dir())
    speakers = assign_speakers(rng, variants)
    babble = make_babble_pool(rng, variants)

    clips_dir = args.out / "clips"
    if clips_dir.exists():
        shutil.rmtree(clips_dir)  # stale clips from an earlier run would otherwise linger
    rows = []
    for number, speaker in enumerate(speakers):
        for word in WORDS:
            samples, info = make_clip(word, speaker, rng, babble)
            relative = f"clips/{word}/{speaker['speaker_id']}.ogg"
            (args.out / relative).parent.mkdir(parents=True, exist_ok=True)
            (args.out / relative).write_bytes(encode_ogg(samples, serial=len(rows) + 1))
            accent, variant = speaker["speaker_id"].split("+")
            rows.append({"file": relative, "split": speaker["split"], "word": word,
                         "speaker_id": speaker["speaker_id"], "accent": accent, "variant": variant, **info})
        if number % 20 == 0:
            print(f"speaker {number + 1}/{len(speakers)}", flush=True)

    with (args.out / METADATA_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    size = sum(p.stat().st_size for p in clips_dir.rglob("*.ogg"))
    print(f"wrote {len(rows)} clips, {size / 1e6:.1f} MB, to {args.out}")


if __name__ == "__main__":
    main()
