"""Device choice, matching dtype, and one-call seeding for reproducible runs."""

import os
import random

import numpy as np

DEVICE_ENV_VAR = "COURSE_DEVICE"


def get_device(prefer: str | None = None):
    """Pick the torch device: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: Force a device such as ``"cpu"``. Default None reads
            ``$COURSE_DEVICE`` and otherwise picks the fastest available one.

    Returns:
        ``torch.device``.

    Raises:
        ValueError: the requested device is not available on this machine.
    """
    import torch

    prefer = prefer or os.environ.get(DEVICE_ENV_VAR) or None
    available = ["cpu"]
    if torch.backends.mps.is_available():
        available.insert(0, "mps")
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    if prefer is None:
        return torch.device(available[0])
    if prefer.split(":")[0] not in available:
        raise ValueError(
            f"Device {prefer!r} is not available here; available: {', '.join(available)}. "
            f"Unset {DEVICE_ENV_VAR} to pick one automatically."
        )
    return torch.device(prefer)


def get_dtype(device=None):
    """Return the dtype that suits ``device``: float16 on CUDA, float32 elsewhere.

    Half precision halves GPU memory at no visible cost for inference. On CPU
    it is slow and some kernels lack it, and on MPS float16 attention has
    given NaNs in diffusion models, so both stay in float32.
    """
    import torch

    device = torch.device(device) if device is not None else get_device()
    return torch.float16 if device.type == "cuda" else torch.float32


def seed_everything(seed: int = 0, deterministic: bool = True) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA).

    Args:
        seed: Non-negative integer seed.
        deterministic: Also ask torch for deterministic kernels where they
            exist (warns instead of failing where they do not).

    Returns:
        The seed, so a notebook can print it.

    Raises:
        ValueError: ``seed`` is not a non-negative integer.
    """
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- libraries such as scikit-learn still draw from it
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed
