"""Dead-letter reasons are counted under a bounded set of kinds, whatever the senders send."""

from __future__ import annotations

import json
from collections import Counter

from streams.core import reasons
from streams.core.intake import RawMessage, decode
from streams.core.timeguard import TOO_LATE, TimeGuard

GOOD = {
    "event_id": "ok-1",
    "customer_id": "cust-ok",
    "occurred_at": "2026-03-01T10:00:00Z",
    "stage": "purchase",
    "touchpoint": "purchase",
    "channel": "store",
    "payload": {"kind": "order", "amount": 12.5, "currency": "EUR"},
}


def reason_of(value: bytes, key: bytes = b"cust-ok") -> str:
    result = decode(RawMessage("t", 0, 0, key, value), 1 << 20)
    assert isinstance(result, str), result
    return result


def test_unique_40_kb_field_names_do_not_grow_the_counts():
    """Counted by their text, these reasons grew a worker by ~33 MB per 800 messages."""
    counts: Counter[str] = Counter()
    for i in range(800):
        name = f"{i:06d}" + "x" * 40_000
        where = [dict(GOOD, **{name: 1}), dict(GOOD, payload={**GOOD["payload"], name: 1})][i % 2]
        reasons.count(counts, reason_of(json.dumps(where).encode()))
    assert sum(counts.values()) == 800
    assert len(counts) == 2, counts.keys()
    assert sum(len(kind) for kind in counts) < 200
    assert set(counts) == {"…: Extra inputs are not permitted", "payload.order.…: Extra inputs are not permitted"}


def test_at_most_max_kinds_plus_other_however_varied_the_texts():
    counts: Counter[str] = Counter()
    for i in range(10 * reasons.MAX_KINDS):
        reasons.count(counts, f"{chr(0x4E00 + i)} something no rule knows")
    assert len(counts) == reasons.MAX_KINDS + 1
    assert counts[reasons.OTHER] == 9 * reasons.MAX_KINDS
    assert all(len(kind) <= reasons.KIND_CHARS for kind in counts)


def test_kinds_keep_what_the_schema_names_and_drop_what_the_sender_chose():
    assert reasons.kind(reason_of(b"")) == "empty message value"
    assert reasons.kind(reason_of(b"{oops")) == "message: Invalid JSON: key must be a string at line N column N"
    assert reasons.kind(reason_of(json.dumps(GOOD).encode(), key=b"other")) == "message key does not match customer_id"
    assert reasons.kind(reason_of(json.dumps(dict(GOOD, channel=None)).encode())).startswith("channel: ")
    assert reasons.kind(f"message of {10**9} bytes exceeds the 65536-byte limit") == "message too large"
    late = TimeGuard().refusal(4e9, 1.7e9)
    assert late is not None and reasons.kind(late) == TOO_LATE
    assert reasons.kind(f"{reasons.QUARANTINED}: their stored state cannot be read (x)") == reasons.QUARANTINED
