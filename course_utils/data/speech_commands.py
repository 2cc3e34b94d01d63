"""Speech commands: one-second clips of spoken command words.

Columns, the same in both profiles:

- ``audio``: on access, a dict ``{"array": float32 NumPy array, "sampling_rate": int}``,
  like the decoded audio of Hugging Face data sets, so ``ds[0]["audio"]["array"]``
  works in both profiles. The array is mono, in [-1, 1], resampled to
  ``sample_rate`` and padded with zeros or cut at the end to exactly 1 s
  (``sample_rate`` samples). Arrow stores the encoded file
  (``{"bytes", "path"}``, shown by ``ds.features``); a ``with_transform``
  decoder decodes each row when it is read, with soundfile rather than
  torchcodec. ``set_format``/``with_format`` replace that decoder, so call
  them on a copy only if you want the raw bytes.
- ``label``: ClassLabel over :data:`WORDS`.
- ``speaker_id``: string. Clips of one speaker fall in one split only.

Mini reads the synthetic clips in ``data/speech_commands/`` (see its
README.md: espeak-ng voices with background noise, made by
``scripts/make_speech_commands.py``). Full reads Google's Speech Commands
v0.02, keeping the clips of :data:`WORDS` only (the other 25 words and the
background-noise clips are dropped). Its source:

- By default the Hub's automatic parquet export of ``google/speech_commands``
  (``revision="refs/convert/parquet"``, ``data_dir="v0.02"``). The main
  branch contains a loading script, which ``datasets`` 4 and later reject. The
  export is chosen over third-party copies because it is the official data
  with its official splits and speaker ids. NOTE: this route has not been run
  from this project, which has no network access. If it fails, the error
  message names the archive below as the alternative.
- Or a local copy of the official archive
  (``speech_commands_v0.02.tar.gz`` from download.tensorflow.org, extracted):
  pass ``source=<folder>`` or set ``$COURSE_SPEECH_COMMANDS_DIR``. Its
  ``validation_list.txt`` and ``testing_list.txt`` define the splits.
"""

import csv
import os
from functools import lru_cache
from pathlib import Path

from course_utils.data._checks import check_count, check_split, require_columns, require_dir
from course_utils.data.audio import DEFAULT_SAMPLE_RATE, check_sample_rate, fix_length, load_audio
from course_utils.paths import data_dir
from course_utils.profiles import get_profile

#: The ten command words of the Speech Commands keyword-spotting benchmark, in label order.
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPLITS = ("train", "validation", "test")
CLIP_SECONDS = 1.0

FULL_SOURCE = "google/speech_commands"
FULL_REVISION = "refs/convert/parquet"
FULL_DATA_DIR = "v0.02"
ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SOURCE_ENV_VAR = "COURSE_SPEECH_COMMANDS_DIR"

METADATA_FILE = "metadata.csv"
#: Columns of ``metadata.csv`` that the loader reads; the generator writes more.
METADATA_COLUMNS = ("file", "split", "word", "speaker_id")


def mini_dir() -> Path:
    """Return the folder of the bundled clips: ``<data>/speech_commands``."""
    return data_dir() / "speech_commands"


def _features():
    from datasets import ClassLabel, Features, Value

    return Features(
        {
            "audio": {"bytes": Value("binary"), "path": Value("string")},
            "label": ClassLabel(names=list(WORDS)),
            "speaker_id": Value("string"),
        }
    )


class ClipDecoder:
    """``with_transform`` function: decode each row's ``audio`` to a fixed-length float32 clip.

    A class rather than a closure, so ``Dataset.map(num_proc=...)`` can pickle it.
    """

    def __init__(self, sample_rate: int, root: Path | None = None):
        self.sample_rate = check_sample_rate(sample_rate)
        self.length = int(round(CLIP_SECONDS * self.sample_rate))
        # Folder that relative paths are read from, when a row has no bytes.
        self.root = root

    def decode(self, audio: dict) -> dict:
        if audio.get("bytes"):
            source = audio["bytes"]
        elif audio.get("path"):
            path = Path(audio["path"])
            source = self.root / path if self.root is not None and not path.is_absolute() else path
        else:
            raise ValueError("An audio entry has neither bytes nor a path; the data set row is empty.")
        try:
            samples = load_audio(source, self.sample_rate)
        except ValueError as error:
            # The bytes alone do not say which clip failed; the stored path does.
            raise ValueError(f"Clip {audio.get('path')!r}: {error}") from error
        return {"array": fix_length(samples, self.length), "sampling_rate": self.sample_rate}

    def __call__(self, batch: dict) -> dict:
        decoded = dict(batch)
        if "audio" in batch:
            decoded["audio"] = [self.decode(audio) for audio in batch["audio"]]
        return decoded


def read_metadata(folder: Path) -> list[dict]:
    """Read ``metadata.csv`` of the bundled clips as a list of row dicts.

    Raises:
        FileNotFoundError: the folder or the table is missing.
        ValueError: the table is missing a column of :data:`METADATA_COLUMNS` or names an unknown word.
    """
    fix = "Regenerate the clips with `python scripts/make_speech_commands.py`."
    require_dir(folder, "speech-commands", fix)
    table = folder / METADATA_FILE
    if not table.is_file():
        raise FileNotFoundError(f"The clip table {table} does not exist. {fix}")
    with table.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in METADATA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{table} is missing the columns {missing}. {fix}")
        rows = list(reader)
    unknown = sorted({r["word"] for r in rows} - set(WORDS))
    if unknown:
        raise ValueError(f"{table} names words {unknown} that are not in WORDS {WORDS}. {fix}")
    return rows


@lru_cache(maxsize=4)
def _mini_split(folder: Path, split: str):
    from datasets import Dataset

    rows = [r for r in read_metadata(folder) if r["split"] == split]
    audio = []
    for row in rows:
        path = folder / row["file"]
        if not path.is_file():
            raise FileNotFoundError(
                f"The clip {path} listed in {METADATA_FILE} does not exist. Regenerate the "
                f"clips with `python scripts/make_speech_commands.py`."
            )
        audio.append({"bytes": path.read_bytes(), "path": row["file"]})
    columns = {
        "audio": audio,
        "label": [WORDS.index(r["word"]) for r in rows],
        "speaker_id": [r["speaker_id"] for r in rows],
    }
    return Dataset.from_dict(columns, features=_features(), split=split)


def load_speech_commands(
    split: str = "train",
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    profile: str | None = None,
    num_clips: int | None = None,
    source: str | os.PathLike | None = None,
):
    """Load one-second command-word clips as a ``datasets.Dataset``.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        sample_rate: Rate of the returned arrays in Hz; clips are resampled with librosa.
        profile: ``"mini"`` or ``"full"``; None resolves the active profile.
        num_clips: Keep the first ``num_clips`` clips of the split; None keeps all.
        source: Full profile only: folder of the extracted official archive.
            None reads ``$COURSE_SPEECH_COMMANDS_DIR``, and when that is unset too
            loads the Hub's parquet export.

    Returns:
        ``datasets.Dataset`` with ``audio``, ``label`` and ``speaker_id`` (see the module docstring).
    """
    check_split(split, SPLITS, "load_speech_commands")
    decoder = ClipDecoder(sample_rate)
    if get_profile(profile) == "full":
        source = source if source is not None else os.environ.get(SOURCE_ENV_VAR) or None
        if source is not None:
            raw = read_archive_folder(Path(source), split)
            # The archive rows store paths relative to the archive folder.
            decoder = ClipDecoder(sample_rate, root=Path(source))
        else:
            raw = adapt_speech_commands(_load_hub_split(split))
        where = f"the {split!r} split of Speech Commands v0.02"
    else:
        raw = _mini_split(mini_dir(), split)
        where = f"the mini {split!r} speech-commands split"
    count = check_count(num_clips, len(raw), "num_clips", where)
    if count < len(raw):
        raw = raw.select(range(count))
    return raw.with_transform(decoder)


def _load_hub_split(split: str):
    from datasets import load_dataset

    try:
        return load_dataset(FULL_SOURCE, data_dir=FULL_DATA_DIR, revision=FULL_REVISION, split=split)
    except Exception as error:
        # Any failure here (no network, the export missing or moved) has the same fix.
        raise RuntimeError(
            f"Could not load Speech Commands v0.02 from the Hub ({FULL_SOURCE}, "
            f"revision={FULL_REVISION!r}, data_dir={FULL_DATA_DIR!r}): {error}. Alternative: "
            f"download and extract {ARCHIVE_URL}, then set {SOURCE_ENV_VAR}=<folder> or pass "
            f"source=<folder>. Or use COURSE_PROFILE=mini for the bundled synthetic clips."
        ) from error


def adapt_speech_commands(raw):
    """Convert a ``google/speech_commands`` ``Dataset`` to the common schema.

    Keeps the rows whose label is one of :data:`WORDS` and renumbers the
    labels to that order. The ``audio`` column (an ``Audio`` feature or its
    ``{"bytes", "path"}`` storage) is cast to undecoded storage, so torchcodec
    is never called. Other columns (``file``, ``is_unknown``, ``utterance_id``) are dropped.
    """
    from datasets import Audio

    require_columns(raw, ("audio", "label", "speaker_id"), FULL_SOURCE,
                    f"The export may have changed layout; use the official archive instead ({ARCHIVE_URL}).")
    names = raw.features["label"].names
    absent = [w for w in WORDS if w not in names]
    if absent:
        raise ValueError(f"The {FULL_SOURCE} labels are missing the words {absent}; found {names}.")
    new_id = {names.index(w): i for i, w in enumerate(WORDS)}
    raw = raw.select_columns(["audio", "label", "speaker_id"])
    if isinstance(raw.features["audio"], Audio):
        raw = raw.cast_column("audio", Audio(decode=False))
    commands = raw.filter(lambda labels: [x in new_id for x in labels], input_columns="label", batched=True)
    features = _features()
    return commands.map(
        lambda labels: {"label": [new_id[x] for x in labels]},
        input_columns="label",
        batched=True,
        features=features,
    )


def read_archive_folder(folder: Path, split: str):
    """Index an extracted Speech Commands archive as a ``Dataset`` of paths (bytes are read on access).

    The archive has one folder per word with files ``<speaker>_nohash_<n>.wav``.
    The files ``validation_list.txt`` and ``testing_list.txt`` list the clips
    of those two splits. Every other clip of :data:`WORDS` is in "train".
    """
    from datasets import Dataset

    fix = f"Download and extract {ARCHIVE_URL} and point {SOURCE_ENV_VAR} at the extracted folder."
    require_dir(folder, "Speech Commands archive", fix)
    listed = {}
    for name, list_file in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        path = folder / list_file
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist, so the splits are unknown. {fix}")
        listed[name] = set(path.read_text(encoding="utf-8").split())
    files = []
    for word in WORDS:
        word_dir = require_dir(folder / word, f"{word!r} clips", fix)
        for clip in sorted(word_dir.glob("*.wav")):
            relative = f"{word}/{clip.name}"
            in_split = next((s for s, names in listed.items() if relative in names), "train")
            if in_split == split:
                files.append((relative, word, clip.name.split("_nohash_")[0]))
    columns = {
        "audio": [{"bytes": None, "path": f} for f, _, _ in files],
        "label": [WORDS.index(w) for _, w, _ in files],
        "speaker_id": [s for _, _, s in files],
    }
    return Dataset.from_dict(columns, features=_features(), split=split)
