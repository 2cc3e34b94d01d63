"""Data sets for the lessons, each a ``datasets.Dataset`` with the same columns in both profiles.

The mini profile loads small bundled or generated data offline; the full
profile loads the Hub data set named in each loader's module. Loaders:

- :func:`load_captioned_shapes` (:mod:`.shapes`): images of coloured shapes with captions.
- :func:`load_digits` (:mod:`.digits`): handwritten digits.
- :func:`load_sample_photos` (:mod:`.photos`): a few photographs, as a dict of PIL images.
- :func:`load_speech_commands` (:mod:`.speech_commands`): one-second spoken command words.

Audio decoding, mono mixing, resampling and padding live in :mod:`.audio`.
"""

import importlib

# Name -> submodule. Loaded on first access (PEP 562), so importing this
# package does not import datasets, PIL or librosa.
_LOADERS = {
    "load_captioned_shapes": "shapes",
    "load_digits": "digits",
    "load_sample_photos": "photos",
    "load_speech_commands": "speech_commands",
}

__all__ = sorted(_LOADERS)


def __getattr__(name: str):
    if name in _LOADERS:
        module = importlib.import_module(f"{__name__}.{_LOADERS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LOADERS))
