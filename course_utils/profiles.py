"""Model profiles: ``mini`` runs offline on a laptop CPU, ``full`` uses the Hub models.

Both profiles run the same notebook code; only model ids and data sources
differ. Taught in every notebook's setup cell.
"""

import os
import sys

PROFILES = ("mini", "full")
PROFILE_ENV_VAR = "COURSE_PROFILE"


def in_colab() -> bool:
    """Return True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def get_profile(profile: str | None = None) -> str:
    """Resolve the active profile.

    Args:
        profile: ``"mini"`` or ``"full"``. Default None reads ``$COURSE_PROFILE``;
            when that is unset too, the profile is ``"full"`` inside Colab and
            ``"mini"`` everywhere else.

    Returns:
        ``"mini"`` or ``"full"``.

    Raises:
        TypeError: ``profile`` is neither a string nor None.
        ValueError: the profile is not one of :data:`PROFILES`.
    """
    source = "argument"
    if profile is None:
        profile = os.environ.get(PROFILE_ENV_VAR)
        source = f"${PROFILE_ENV_VAR}"
    if profile is None or profile == "":
        return "full" if in_colab() else "mini"
    if not isinstance(profile, str):
        raise TypeError(
            f"profile must be a string or None, got {type(profile).__name__} ({profile!r}). "
            f"Pass one of {', '.join(repr(name) for name in PROFILES)}, or None to read ${PROFILE_ENV_VAR}."
        )
    normalized = profile.strip().lower()
    if normalized not in PROFILES:
        raise ValueError(
            f"Unknown profile {profile!r} (from {source}). Valid profiles: "
            f"{', '.join(PROFILES)}. Set {PROFILE_ENV_VAR}=mini for the offline "
            f"models or {PROFILE_ENV_VAR}=full for the Hub models."
        )
    return normalized


def banner(profile: str | None = None, device: str | None = None) -> str:
    """Return the one-line banner each notebook prints after setup.

    Args:
        profile: Profile to report; None resolves it with :func:`get_profile`.
        device: Device name to report; None picks it with
            :func:`course_utils.device.get_device`.
    """
    profile = get_profile(profile)
    if device is None:
        from course_utils.device import get_device

        device = str(get_device())
    other = "full" if profile == "mini" else "mini"
    return (
        f"Profile: {profile} | device: {device} | to switch, set "
        f"{PROFILE_ENV_VAR}={other} before starting Jupyter (or in the first cell) "
        f"and restart the kernel."
    )
