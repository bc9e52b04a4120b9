"""Dead-letter reasons counted under a bounded set of kinds.

A reason's text names what the sender sent (unknown field names, values, sizes): counted by text,
unique long field names grew a worker's memory without bound. `kind` maps a reason to its kind,
without what the sender chose (field names not in the schema, quoted values, numbers), and
`count` keeps at most `MAX_KINDS` kinds, the rest under `OTHER`: the memory is bounded however
the texts vary, and the common kinds keep their own counts.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from typing import Any

from schemas import TouchpointEvent
from streams.core.timeguard import TOO_EARLY, TOO_LATE

#: Most kinds counted apart; any further kind is counted under `OTHER`.
MAX_KINDS = 64
OTHER = "other reasons"
#: Longest kind kept (a kind is cut to this many characters).
KIND_CHARS = 100
#: The start of the reason of an event of a quarantined customer (`streams/live/processor.py`).
QUARANTINED = "the customer is quarantined"
INTERNAL = "internal error applying the event"

#: Reasons recognised by how they start: (start, kind).
_FIXED = (
    ("empty message value", "empty message value"),
    ("message of ", "message too large"),
    ("empty message key", "empty message key"),
    ("message key ", "message key does not match customer_id"),
    (TOO_EARLY, TOO_EARLY),
    (TOO_LATE, TOO_LATE),
    (QUARANTINED, QUARANTINED),
    (INTERNAL, INTERNAL),
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(\.\d+)?")


@cache
def _schema_names() -> frozenset[str]:
    """Every property name of the touchpoint schema, nested ones too, and the discriminator tags."""
    names: set[str] = {"message"}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("properties", "mapping") and isinstance(value, dict):
                    names.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(TouchpointEvent.model_json_schema(by_alias=True))
    return frozenset(names)


def _place(where: str) -> str:
    """A validation error's location with every part the schema does not name replaced by `…`."""
    known = _schema_names()
    parts = []
    for part in where.split("."):
        parts.append(part if part in known else "N" if part.isdigit() else "…")
    return ".".join(parts)


def kind(error: str) -> str:
    """The kind of a dead-letter reason: its text without anything the sender chose, at most `KIND_CHARS` long."""
    for start, name in _FIXED:
        if error.startswith(start):
            return name
    # A validation summary (`streams.core.intake.describe`): "where: what; where: what". Its first part
    # decides; a location may name the sender's own fields, the text may quote the sender's values.
    first = error.split("; ", 1)[0]
    where, sep, what = first.partition(": ")
    text = f"{_place(where)}: {what}" if sep else where
    text = _NUMBER.sub("N", _QUOTED.sub("'…'", text))
    return text if len(text) <= KIND_CHARS else text[: KIND_CHARS - 1] + "…"


def count(counts: Counter[str], error: str) -> str:
    """Count `error` under its kind in `counts` (at most `MAX_KINDS` kinds, then `OTHER`); returns the kind."""
    name = kind(error)
    if name not in counts and len(counts) >= MAX_KINDS:
        name = OTHER
    counts[name] += 1
    return name


#: Fixed labels of dead-letter reasons, for the labels of /metrics (`label`): a handful of words,
#: where `kind` keeps enough of the text for a person to tell the kinds apart.
LABELS = (
    "empty_value",
    "too_large",
    "missing_key",
    "key_mismatch",
    "invalid_json",
    "invalid_event",
    "event_time",
    "no_rate",
    "conflict",
    "quarantined",
    "offsets_lost",
    "internal_error",
    "other",
)
_LABEL_STARTS = (
    ("empty message value", "empty_value"),
    ("message of ", "too_large"),
    ("empty message key", "missing_key"),
    ("message key ", "key_mismatch"),
    ("message: Invalid JSON", "invalid_json"),
    (TOO_EARLY, "event_time"),
    (TOO_LATE, "event_time"),
    ("payload.currency: no rate", "no_rate"),
    ("conflict: ", "conflict"),
    (QUARANTINED, "quarantined"),
    ("offsets lost", "offsets_lost"),
    (INTERNAL, "internal_error"),
)


def label(error: str) -> str:
    """Which of `LABELS` a dead-letter reason is."""
    for start, name in _LABEL_STARTS:
        if error.startswith(start):
            return name
    if ": " in error:  # a validation summary (`streams.core.intake.describe`): "<field>: <what is wrong>; ..."
        return "invalid_event"
    return "other"
