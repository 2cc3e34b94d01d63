import pytest

from course_utils.profiles import banner, get_profile


def test_profile_argument_wins(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert get_profile("mini") == "mini"


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "FULL")
    assert get_profile() == "full"


def test_default_mini_outside_colab(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert get_profile() == "mini"


def test_default_full_inside_colab(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    assert get_profile() == "full"


def test_unknown_profile_names_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    with pytest.raises(ValueError, match=r"Unknown profile 'tiny' \(from \$COURSE_PROFILE\)") as error:
        get_profile()
    assert "mini, full" in str(error.value)


def test_banner_names_profile_device_and_switch():
    text = banner("mini", device="cpu")
    assert "Profile: mini" in text
    assert "device: cpu" in text
    assert "COURSE_PROFILE=full" in text
    assert "\n" not in text


def test_non_string_profile_rejected():
    with pytest.raises(TypeError, match=r"profile must be a string or None, got int \(1\)\. Pass one of 'mini', 'full'"):
        get_profile(1)
