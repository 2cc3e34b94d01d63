"""Targeted control of library log messages that would only confuse students."""

import logging

#: (library logger, text) of notices that are expected in this course and change nothing.
KNOWN_NOTICES = (
    # transformers 5 prefers torchvision image processors and, without torchvision,
    # falls back to the PIL ones. The course does not install torchvision (no release
    # pairs with torch 2.13 here), and the PIL backend prepares the same inputs.
    ("transformers", "requires torchvision (not installed)"),
    # diffusers 0.42.1 logs this from ModelMixin.to() even when the list of float32
    # modules is empty, for example on every from_pipe(..., dtype=...) call.
    ("diffusers", "that should be kept in float32: []"),
)


class _DropMessages(logging.Filter):
    """Log filter that drops records whose message contains a given text."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def hide_known_notices() -> None:
    """Hide the expected, harmless library notices listed in :data:`KNOWN_NOTICES`.

    Only those exact messages are dropped; every other warning still shows.
    Call it before importing diffusers or a CLIP processor, because both
    libraries attach their log handlers on import.
    """
    import diffusers  # noqa: F401 -- importing configures the library's log handler
    import transformers  # noqa: F401

    for logger_name, text in KNOWN_NOTICES:
        for handler in logging.getLogger(logger_name).handlers:
            if not any(isinstance(f, _DropMessages) and f.text == text for f in handler.filters):
                handler.addFilter(_DropMessages(text))
