"""Tests for course_utils.data.audio on files written with soundfile in tmp_path."""

import io

import numpy as np
import pytest
import soundfile

from course_utils.data.audio import (
    fix_length,
    load_audio,
    load_audio_with_rate,
    to_float32,
    to_mono,
)


def tone(frequency: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_stereo_int16_44k_wav_becomes_mono_float32_16k(tmp_path):
    left, right = tone(440, 44_100, amplitude=0.6), tone(440, 44_100, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 44_100, subtype="PCM_16")
    assert soundfile.info(path).channels == 2

    samples = load_audio(path, 16_000)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert len(samples) == 16_000
    # The mono mix of a 0.6 and a 0.2 amplitude tone in phase has amplitude 0.4.
    assert np.abs(samples[1000:-1000]).max() == pytest.approx(0.4, abs=0.01)
    assert dominant_frequency(samples, 16_000) == pytest.approx(440, abs=2)


def test_sample_rate_none_keeps_file_rate(tmp_path):
    path = tmp_path / "a.flac"
    soundfile.write(path, tone(300, 22_050, seconds=0.5), 22_050)
    samples, rate = load_audio_with_rate(path, None)
    assert rate == 22_050
    assert len(samples) == 11_025


@pytest.mark.parametrize(("fmt", "subtype"), [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("WAV", "PCM_U8")])
def test_decodes_formats_from_bytes(fmt, subtype):
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(1000, 8000), 8000, format=fmt, subtype=subtype)
    samples = load_audio(buffer.getvalue(), 16_000)
    assert len(samples) == 16_000
    assert dominant_frequency(samples, 16_000) == pytest.approx(1000, abs=3)
    assert np.abs(samples).max() <= 1.0


def test_to_float32_scales_integer_pcm():
    assert to_float32(np.array([-32768, 0, 16384], dtype=np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert to_float32(np.array([0, 128, 255], dtype=np.uint8)).tolist() == pytest.approx([-1.0, 0.0, 0.9921875])
    assert to_float32(np.array([2.0, -3.0])).tolist() == [1.0, -1.0]
    with pytest.raises(TypeError, match="integers or floats, got dtype"):
        to_float32(np.array(["a"]))


def test_to_mono_averages_channels_and_rejects_3d():
    stereo = np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    assert to_mono(stereo).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match=r"shape \(frames,\) or \(frames, channels\), got shape \(2, 2, 2\)"):
        to_mono(np.zeros((2, 2, 2)))


def test_fix_length_pads_and_trims_at_the_end():
    samples = np.arange(1, 6, dtype=np.float32)
    assert fix_length(samples, 8).tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert fix_length(samples, 3).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="positive number of samples, got 0"):
        fix_length(samples, 0)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.wav does not exist"):
        load_audio(tmp_path / "nothing.wav")


def test_unreadable_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not audio samples")
    with pytest.raises(ValueError, match=r"Could not decode audio from .*notes\.wav.*ffmpeg -i INPUT"):
        load_audio(path)


def test_empty_bytes_and_wrong_types_are_rejected():
    with pytest.raises(ValueError, match="empty bytes"):
        load_audio(b"")
    with pytest.raises(TypeError, match="path, bytes or a binary file object, got int"):
        load_audio(42)
    with pytest.raises(ValueError, match="sample_rate must be a positive integer in Hz, got 0"):
        load_audio(b"RIFF", sample_rate=0)


def test_empty_audio_file_is_rejected(tmp_path):
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16_000)
    with pytest.raises(ValueError, match="has no samples"):
        load_audio(path)
