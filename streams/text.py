"""Text from outside (customer ids, event ids, error messages, URLs) made safe to show a person.

Customer-supplied text reaches terminals, logs and rich tables. Control characters there can
move the cursor, rewrite earlier lines or recolour a log; rich markup (`[bold]`, `[/]`) in a
customer id would be interpreted, or crash the table it is printed in. Connection URLs carry
passwords. Everything printed goes through one of these.
"""

from __future__ import annotations

import re
import unicodedata

from rich.markup import escape

#: `scheme://user:password@host` — the credentials part of a URL.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*)(?::(?P<password>[^/@\s]*))?@")
#: Characters that change how a terminal shows what follows: C0/C1 controls, DEL, and the
#: Unicode format characters (bidirectional overrides, zero-width joiners, …).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: object, keep_newlines: bool = False) -> str:
    """`value` as text with every control or format character written as a `\\x..` / `\\u....` escape."""
    text = str(value)
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(
        char
        if (keep_newlines and char in "\n\t") or unicodedata.category(char) not in _UNSAFE_CATEGORIES
        else _escaped(char)
        for char in text
    )


def shown(value: object) -> str:
    """`value` for rich output: printable, and its markup brackets escaped so rich prints them literally."""
    return escape(printable(value))


def redact_url(url: str) -> str:
    """A connection URL without its password (and with the user name kept): safe to log."""
    return _URL_CREDENTIALS.sub(
        lambda m: f"{m['scheme']}{m['user']}:***@" if m["password"] is not None else f"{m['scheme']}{m['user']}@", url
    )


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with URL passwords and each of `secrets` (values of secret settings) replaced by `***`."""
    text = redact_url(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
