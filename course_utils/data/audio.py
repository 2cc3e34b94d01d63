"""Audio I/O for the course: decode any file soundfile reads to mono float32 at a chosen rate.

The decoding and conversion functions return NumPy arrays of float32 samples
in [-1, 1], one 1-D array per clip, the layout of decoded audio in Hugging
Face data sets.
Decoding uses soundfile (libsndfile: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF
and more) and resampling uses librosa, so no FFmpeg or torchcodec is needed.
"""

import io
from pathlib import Path

import numpy as np

#: Sample rate of the course's speech clips and of most speech models, in Hz.
DEFAULT_SAMPLE_RATE = 16_000


def check_sample_rate(sample_rate) -> int:
    """Return ``sample_rate`` if it is a positive integer (Hz), else raise ValueError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(
            f"sample_rate must be a positive integer in Hz, got {sample_rate!r}. "
            f"Speech models usually expect sample_rate={DEFAULT_SAMPLE_RATE}."
        )
    return int(sample_rate)


def to_float32(samples: np.ndarray) -> np.ndarray:
    """Convert PCM samples to float32 in [-1, 1].

    Integer arrays are scaled by their type's range (int16 by 32768, uint8
    around 128, as WAV stores 8-bit audio). Float arrays are clipped to [-1, 1].
    """
    samples = np.asarray(samples)
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
    if np.issubdtype(samples.dtype, np.floating):
        return np.clip(samples, -1.0, 1.0).astype(np.float32)
    raise TypeError(f"Audio samples must be integers or floats, got dtype {samples.dtype}.")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of ``samples`` (frames x channels, soundfile's layout) into a 1-D array.

    A 1-D array is returned unchanged (as float32).
    """
    samples = to_float32(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples.mean(axis=1, dtype=np.float32)
    raise ValueError(
        f"Expected audio of shape (frames,) or (frames, channels), got shape {samples.shape}."
    )


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D float32 signal from ``orig_sr`` to ``target_sr`` Hz with librosa (soxr)."""
    orig_sr, target_sr = check_sample_rate(orig_sr), check_sample_rate(target_sr)
    if orig_sr == target_sr:
        return samples
    import librosa

    out = librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr)
    # The resampling filter can overshoot slightly past full scale.
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def fix_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Pad with zeros at the end, or cut samples from the end, to exactly ``length`` samples.

    The start of the clip is kept, as ``librosa.util.fix_length`` does. Speech
    Commands words start near the beginning, and most clips are already 1 s long.
    """
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0:
        raise ValueError(f"length must be a positive number of samples, got {length!r}.")
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))


def load_audio(source, sample_rate: int | None = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to a mono float32 array in [-1, 1] at ``sample_rate`` Hz.

    Args:
        source: Path (str or ``Path``), the file's bytes, or a binary file object.
            Any format soundfile reads is accepted; stereo is averaged to mono
            and integer PCM is scaled to [-1, 1].
        sample_rate: Target rate in Hz; None keeps the file's own rate.

    Returns:
        1-D float32 array.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: the data is empty or not audio soundfile can decode.
    """
    samples, _ = load_audio_with_rate(source, sample_rate)
    return samples


def load_audio_with_rate(source, sample_rate: int | None = DEFAULT_SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Decode like :func:`load_audio` and also return the rate of the returned samples."""
    import soundfile

    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate)
    if isinstance(source, str | Path):
        name = str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"Audio file {name} does not exist; check the path.")
        handle = source
    elif isinstance(source, bytes | bytearray | memoryview):
        name = f"{len(source)} bytes of audio"
        if len(source) == 0:
            raise ValueError("Cannot decode audio from empty bytes; the file or column is empty.")
        handle = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        name, handle = getattr(source, "name", "the file object"), source
    else:
        raise TypeError(
            f"source must be a path, bytes or a binary file object, got {type(source).__name__}."
        )
    try:
        data, file_rate = soundfile.read(handle, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(
            f"Could not decode audio from {name}: {str(error).rstrip('.')}. soundfile reads WAV, FLAC, OGG, MP3, "
            f"AIFF and other libsndfile formats; convert other files first, for example with "
            f"`ffmpeg -i INPUT -ar 16000 -ac 1 OUTPUT.wav`."
        ) from error
    if data.shape[0] == 0:
        raise ValueError(f"The audio in {name} has no samples.")
    mono = to_mono(data)
    if sample_rate is None:
        return mono, int(file_rate)
    return resample(mono, int(file_rate), sample_rate), sample_rate
