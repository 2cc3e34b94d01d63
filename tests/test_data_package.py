"""Tests for the course_utils.data package: lazy loader exports."""

import subprocess
import sys

import pytest

import course_utils.data


def test_importing_the_package_loads_no_heavy_library():
    code = (
        "import sys, course_utils.data; "
        "print(','.join(m for m in ('datasets', 'torch', 'librosa', 'soundfile', 'PIL', 'sklearn') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_loaders_are_exported_lazily():
    assert set(course_utils.data.__all__) == {
        "load_captioned_shapes",
        "load_digits",
        "load_sample_photos",
        "load_speech_commands",
    }
    assert set(course_utils.data.__all__) <= set(dir(course_utils.data))
    assert course_utils.data.load_digits.__module__ == "course_utils.data.digits"
    with pytest.raises(AttributeError, match="has no attribute 'load_mnist'"):
        course_utils.data.load_mnist  # noqa: B018
