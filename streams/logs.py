"""Logging set up so that a stranger can read every line: no secrets, no control characters.

Log lines carry text from outside: event and customer ids, exception messages (which may
quote a URL or a value a sender chose). A filter on the handler rewrites each record's final
message once, so no call site has to remember to. Both formats, text and JSON
(`JOURNEY_LOG_FORMAT=json`, for log collectors), pass through that one filter.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TextIO

from streams.text import printable, redact

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class SafeLogFilter(logging.Filter):
    """Redacts secrets and URL passwords and escapes control characters in every record it passes."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = printable(redact(message, self.secrets), keep_newlines=True)
        record.args = None
        # The traceback is formatted later by the handler (or was, by a handler before this one): format
        # it now if need be, and make it safe too.
        traceback = record.exc_text
        if record.exc_info and record.exc_info[1] is not None:
            traceback = traceback or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if traceback:
            record.exc_text = printable(redact(traceback, self.secrets), keep_newlines=True)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process, exc (the traceback, or null).

    The message and traceback arrive already redacted and escaped by `SafeLogFilter`; JSON's own
    escaping then keeps every newline of a traceback inside its one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_text
        if exc is None and record.exc_info:  # a record that did not pass the filter (not ours)
            exc = self.formatException(record.exc_info)
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "exc": exc,
        }
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, secrets: tuple[str, ...] = (), fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log to `stream` (stderr) at `level`, every line through `SafeLogFilter`; `fmt` is `text` or `json`."""
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    handler.addFilter(SafeLogFilter(secrets))
    # Added beside the handlers a host set up already (a test runner, an embedding app), which stay;
    # only a handler an earlier call of this function added is replaced.
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if getattr(h, "journey_handler", False)]:
        root.removeHandler(earlier)
    handler.journey_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
