"""Helpers for the course "Embeddings and Fusion in Multimodal AI".

The lessons live in the notebooks; this package contains the plumbing they share:
profiles and the model registry, devices and seeds, pooling and similarity,
data loading, fusion, masks and plots.

Importing the package is cheap: each submodule, and the heavy libraries behind
it (torch, transformers, matplotlib), loads on first use. Import helpers from
their module, for example ``from course_utils.pooling import mean_pool``.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "colab",
    "data",
    "device",
    "encoders",
    "fusion",
    "images",
    "logs",
    "masks",
    "metrics",
    "paths",
    "plotting",
    "pooling",
    "probes",
    "profiles",
    "registry",
    "similarity",
    "text",
}


def __getattr__(name: str):
    # PEP 562 lazy submodules: `course_utils.pooling` imports torch only when touched.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
