import logging

import pytest

from course_utils.logs import KNOWN_NOTICES, hide_known_notices


def _record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)


@pytest.mark.parametrize(("logger_name", "text"), KNOWN_NOTICES)
def test_only_known_notice_hidden(logger_name, text):
    hide_known_notices()
    hide_known_notices()  # a second call adds no second filter
    handlers = logging.getLogger(logger_name).handlers
    assert handlers
    for handler in handlers:
        assert not handler.filter(_record(logger_name, f"prefix {text} suffix"))
        assert handler.filter(_record(logger_name, "a warning students should still see"))
        assert len([f for f in handler.filters if getattr(f, "text", None) == text]) == 1
