"""Tests for the speech-commands loader: bundled mini clips, the Hub adapter and the archive reader."""

import csv
import io
import re
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile
from datasets import Audio, ClassLabel, Dataset, Features, Value

from course_utils.data import load_speech_commands
from course_utils.data import speech_commands as sc
from course_utils.data.speech_commands import WORDS, adapt_speech_commands, read_archive_folder
from course_utils.paths import data_dir

#: Label names of google/speech_commands v0.02, in the Hub data set's order.
OFFICIAL_NAMES = [
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two",
    "three", "four", "five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy",
    "house", "marvin", "sheila", "tree", "wow", "backward", "forward", "follow", "learn", "visual",
    "_silence_",
]


@pytest.fixture(scope="module")
def splits():
    return {s: load_speech_commands(s, profile="mini") for s in ("train", "validation", "test")}


def test_columns_and_decoded_audio(splits):
    ds = splits["train"]
    assert ds.column_names == ["audio", "label", "speaker_id"]
    assert ds.features["label"] == ClassLabel(names=list(WORDS))
    audio = ds[0]["audio"]
    assert audio["sampling_rate"] == 16_000
    assert isinstance(audio["array"], np.ndarray)
    assert audio["array"].dtype == np.float32
    assert audio["array"].shape == (16_000,)
    assert np.abs(audio["array"]).max() <= 1.0


def test_every_word_has_the_same_number_of_clips(splits):
    assert {s: len(d) for s, d in splits.items()} == {"train": 1200, "validation": 300, "test": 300}
    for split, ds in splits.items():
        counts = Counter(ds["label"])
        assert set(counts) == set(range(len(WORDS))), split
        assert len(set(counts.values())) == 1, (split, counts)


def test_speakers_and_voice_variants_are_disjoint_between_splits(splits):
    speakers = {s: set(d["speaker_id"]) for s, d in splits.items()}
    variants = {s: {x.split("+")[1] for x in ids} for s, ids in speakers.items()}
    for first, second in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not speakers[first] & speakers[second]
        assert not variants[first] & variants[second]


def test_clips_contain_a_word_louder_than_the_noise(splits):
    # The word is louder than the noise floor: the loudest 50 ms frame has over twice the RMS of the quietest.
    for row in splits["test"].select(range(0, 300, 15)):
        frames = row["audio"]["array"].reshape(20, 800)
        rms = np.sqrt((frames**2).mean(axis=1))
        assert rms.max() > 2 * rms.min(), row["speaker_id"]


def test_sample_rate_and_num_clips():
    ds = load_speech_commands("test", sample_rate=8000, profile="mini", num_clips=4)
    assert len(ds) == 4
    assert ds[0]["audio"]["array"].shape == (8000,)
    assert ds[0]["audio"]["sampling_rate"] == 8000


def test_loading_twice_gives_identical_arrays():
    first = load_speech_commands("validation", profile="mini", num_clips=5)
    sc._mini_split.cache_clear()
    second = load_speech_commands("validation", profile="mini", num_clips=5)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a["audio"]["array"], b["audio"]["array"])
    assert first["speaker_id"] == second["speaker_id"]


def test_decoder_survives_map_and_select(splits):
    lengths = splits["test"].select(range(3)).map(lambda row: {"n": len(row["audio"]["array"])})
    assert list(lengths["n"]) == [16_000] * 3


def test_bundle_fits_the_size_budget():
    folder = data_dir() / "speech_commands"
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total <= 15_000_000
    with (folder / "metadata.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1800
    assert all((folder / r["file"]).is_file() for r in rows)


def test_unknown_split_and_too_many_clips():
    with pytest.raises(ValueError, match=r"Unknown split 'dev' for load_speech_commands\(\)"):
        load_speech_commands("dev", profile="mini")
    with pytest.raises(ValueError, match=r"num_clips=301 is more than the 300 items in the mini 'test'"):
        load_speech_commands("test", profile="mini", num_clips=301)
    with pytest.raises(ValueError, match="sample_rate must be a positive integer in Hz, got -1"):
        load_speech_commands("test", sample_rate=-1, profile="mini")


def test_missing_data_folder_says_how_to_regenerate(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"speech_commands does not exist\. Regenerate the clips"):
        load_speech_commands("train", profile="mini")


def copy_bundle(tmp_path, rows: int = 20):
    """Copy the first ``rows`` clips of the bundle into tmp_path/speech_commands."""
    source = data_dir() / "speech_commands"
    target = tmp_path / "speech_commands"
    with (source / "metadata.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        kept = [r for r in reader if r["split"] == "test"][:rows]
        fields = reader.fieldnames
    for row in kept:
        (target / row["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / row["file"], target / row["file"])
    with (target / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return target, kept


def test_corrupt_clip_error_names_the_clip(tmp_path, monkeypatch):
    target, kept = copy_bundle(tmp_path)
    (target / kept[3]["file"]).write_bytes(b"OggS but not really a vorbis stream")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    ds = load_speech_commands("test", profile="mini")
    assert ds[2]["audio"]["array"].shape == (16_000,)
    with pytest.raises(ValueError, match=re.escape(f"Clip '{kept[3]['file']}': Could not decode audio")):
        ds[3]


def test_missing_clip_and_bad_table_are_reported(tmp_path, monkeypatch):
    target, kept = copy_bundle(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    (target / kept[0]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"listed in metadata\.csv does not exist"):
        load_speech_commands("test", profile="mini")
    (target / "metadata.csv").write_text("file,split,word,speaker_id\nx.ogg,test,maybe,s1\n")
    with pytest.raises(ValueError, match=r"names words \['maybe'\] that are not in WORDS"):
        load_speech_commands("test", profile="mini")
    (target / "metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata\.csv does not exist"):
        load_speech_commands("test", profile="mini")


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def hub_lookalike():
    """A local Dataset with the columns and feature types of google/speech_commands v0.02."""
    rng = np.random.default_rng(0)
    stereo_44k = (rng.uniform(-0.5, 0.5, (52_920, 2))).astype(np.float32)  # 1.2 s, 2 channels
    short_16k = rng.uniform(-0.5, 0.5, 8000).astype(np.float32)  # 0.5 s
    names = ["bed", *OFFICIAL_NAMES[:20], *OFFICIAL_NAMES[21:]]  # a different order: "bed" first
    labels = ["go", "bed", "yes", "_silence_"]
    clips = [wav_bytes(stereo_44k, 44_100)] * 2 + [wav_bytes(short_16k, 16_000)] * 2
    storage = Dataset.from_dict(
        {
            "file": [f"{w}/x_nohash_0.wav" for w in labels],
            "audio": [{"bytes": c, "path": None} for c in clips],
            "label": [names.index(w) for w in labels],
            "is_unknown": [False, True, False, False],
            "speaker_id": ["a1", "b2", "c3", None],
            "utterance_id": [0, 0, 1, 0],
        },
        features=Features(
            {
                "file": Value("string"),
                "audio": {"bytes": Value("binary"), "path": Value("string")},
                "label": ClassLabel(names=names),
                "is_unknown": Value("bool"),
                "speaker_id": Value("string"),
                "utterance_id": Value("int8"),
            }
        ),
    )
    # Casting to the Audio feature needs no decoder; the Hub data set has this type.
    return storage.cast_column("audio", Audio(sampling_rate=16_000))


def test_hub_adapter_keeps_the_ten_words_and_renumbers():
    adapted = adapt_speech_commands(hub_lookalike())
    mini = load_speech_commands("test", profile="mini", num_clips=1)
    assert adapted.features == mini.features
    assert adapted.column_names == ["audio", "label", "speaker_id"]
    assert [WORDS[i] for i in adapted["label"]] == ["go", "yes"]
    assert adapted["speaker_id"] == ["a1", "c3"]


def test_hub_adapter_output_decodes_like_mini():
    decoded = adapt_speech_commands(hub_lookalike()).with_transform(sc.ClipDecoder(16_000))
    for row in decoded:
        assert row["audio"]["array"].shape == (16_000,)
        assert row["audio"]["array"].dtype == np.float32
    # The 0.5 s clip ("yes") is padded with zeros at the end.
    assert not decoded[1]["audio"]["array"][8100:].any()
    assert decoded[1]["audio"]["array"][:7900].any()


def test_hub_adapter_rejects_other_layouts():
    with pytest.raises(ValueError, match=r"is missing the columns \['speaker_id'\]"):
        adapt_speech_commands(hub_lookalike().remove_columns("speaker_id"))
    renamed = hub_lookalike().cast_column("label", ClassLabel(names=[f"w{i}" for i in range(36)]))
    with pytest.raises(ValueError, match=r"labels are missing the words \['yes'"):
        adapt_speech_commands(renamed)


def test_hub_failure_names_the_alternative(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv(sc.SOURCE_ENV_VAR, raising=False)
    with pytest.raises(RuntimeError, match=r"no route to host.*speech_commands_v0\.02\.tar\.gz.*COURSE_SPEECH_COMMANDS_DIR"):
        load_speech_commands("test", profile="full")


def make_archive(folder):
    """Write a tiny folder laid out like the extracted official archive."""
    for word in WORDS:
        (folder / word).mkdir(parents=True)
    (folder / "bed").mkdir()
    clip = wav_bytes(np.full(16_000, 0.25, dtype=np.float32), 16_000)
    for name in ("yes/aa11_nohash_0.wav", "yes/bb22_nohash_0.wav", "go/cc33_nohash_1.wav",
                 "stop/dd44_nohash_0.wav", "bed/ee55_nohash_0.wav"):
        (folder / name).write_bytes(clip)
    (folder / "validation_list.txt").write_text("go/cc33_nohash_1.wav\nbed/ee55_nohash_0.wav\n")
    (folder / "testing_list.txt").write_text("stop/dd44_nohash_0.wav\n")


def test_archive_folder_splits_by_the_official_lists(tmp_path):
    make_archive(tmp_path)
    train = read_archive_folder(tmp_path, "train")
    assert train["speaker_id"] == ["aa11", "bb22"]
    assert [WORDS[i] for i in read_archive_folder(tmp_path, "validation")["label"]] == ["go"]
    assert read_archive_folder(tmp_path, "test")["speaker_id"] == ["dd44"]


def test_full_profile_reads_an_archive_folder(tmp_path, monkeypatch):
    make_archive(tmp_path)
    monkeypatch.setenv(sc.SOURCE_ENV_VAR, str(tmp_path))
    ds = load_speech_commands("train", sample_rate=8000, profile="full")
    assert ds.features == load_speech_commands("test", profile="mini", num_clips=1).features
    assert ds[0]["audio"]["array"].shape == (8000,)
    assert ds[0]["audio"]["array"][100:7900] == pytest.approx(0.25, abs=0.01)


def test_archive_folder_without_lists_is_reported(tmp_path):
    make_archive(tmp_path)
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"testing_list\.txt does not exist"):
        read_archive_folder(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere does not exist"):
        read_archive_folder(tmp_path / "nowhere", "test")


def test_decoder_rejects_an_empty_row():
    with pytest.raises(ValueError, match="neither bytes nor a path"):
        sc.ClipDecoder(16_000).decode({"bytes": None, "path": None})


def test_full_profile_asks_for_the_parquet_export(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return hub_lookalike()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv(sc.SOURCE_ENV_VAR, raising=False)
    ds = load_speech_commands("validation", sample_rate=8000, profile="full")
    assert calls == [
        ("google/speech_commands", {"data_dir": "v0.02", "revision": "refs/convert/parquet", "split": "validation"})
    ]
    assert [WORDS[i] for i in ds["label"]] == ["go", "yes"]
    assert ds[0]["audio"]["array"].shape == (8000,)
