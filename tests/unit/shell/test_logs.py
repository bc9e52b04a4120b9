"""`JOURNEY_LOG_FORMAT=json`: one JSON object per line, secrets redacted, control characters escaped."""

from __future__ import annotations

import json
import logging

import pytest

from streams.logs import setup_logging
from streams.settings import Settings

PASSWORD = "s3cret-Passw0rd"
TOKEN = "http-token-0123456789abcdef"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_are_one_safe_object_per_line(capsys, restore_logging):
    settings = Settings(redis_url=f"redis://u:{PASSWORD}@h:1/0", http_token=TOKEN)
    setup_logging("info", settings.secrets(), "json")
    log = logging.getLogger("streams.test")
    log.info("connecting to %s with %s", settings.redis_dsn, TOKEN)
    log.warning("event %s failed", "evt-\x1b[2J\x1b[31mred\u202e")
    try:
        raise ConnectionError(f"cannot reach redis://u:{PASSWORD}@h:1/0")
    except ConnectionError:
        log.exception("batch failed\nsecond line")
    log.debug("not at info")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert set(entry) == {"time", "level", "logger", "message", "process", "exc"}
        assert entry["logger"] == "streams.test" and isinstance(entry["process"], int)
        assert entry["time"].endswith("Z") and entry["time"][10] == "T"
    text = "\n".join(lines)
    assert PASSWORD not in text and TOKEN not in text
    assert "\x1b" not in text and "\u202e" not in text
    assert entries[0]["message"] == "connecting to redis://u:***@h:1/0 with ***"
    assert entries[1]["level"] == "WARNING" and entries[1]["message"] == "event evt-\\x1b[2J\\x1b[31mred\\u202e failed"
    assert entries[2]["level"] == "ERROR" and entries[2]["message"] == "batch failed\nsecond line"
    assert entries[2]["exc"].startswith("Traceback") and "redis://u:***@h:1/0" in entries[2]["exc"]
    assert entries[0]["exc"] is None


def test_text_logs_stay_the_default(capsys, restore_logging):
    setup_logging("info", ())
    logging.getLogger("streams.test").info("plain")
    err = capsys.readouterr().err
    assert "] [INFO] streams.test: plain" in err
    with pytest.raises(ValueError, match="json"):
        setup_logging("info", (), "xml")


def test_the_http_token_is_a_secret_that_must_be_long():
    settings = Settings(http_token=TOKEN)
    assert TOKEN in settings.secrets()
    assert TOKEN not in repr(settings)
    assert Settings(http_token="").http_token is None
    with pytest.raises(ValueError, match="at least 16"):
        Settings(http_token="short")
