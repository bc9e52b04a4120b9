"""Logging set up so that a stranger can read every line: no secrets, no control characters.

Log lines carry text from outside: event and customer ids, exception messages (which may
quote a URL or a value a sender chose). A filter on the handler rewrites each record's final
message once, so no call site has to remember to.
"""

from __future__ import annotations

import logging

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
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # The traceback is formatted later by the handler: format it now, and make it safe too.
            record.exc_text = printable(
                redact(logging.Formatter().formatException(record.exc_info), self.secrets), keep_newlines=True
            )
            record.exc_info = None
        return True


def setup_logging(level: str, secrets: tuple[str, ...] = ()) -> None:
    """Log to stderr at `level`, every line through `SafeLogFilter`."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SafeLogFilter(secrets))
    # Not `force`: a host that set up logging already (a test runner, an embedding app) keeps its handlers.
    logging.basicConfig(level=level.upper(), handlers=[handler])
