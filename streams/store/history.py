"""A customer's change history in Redis: compact entries, the latest few, for `journey explain` and profiles.

The history is the largest thing Redis keeps per customer, so an entry holds only what explain and
the profile show, as a JSON array without field names:

    [at (epoch seconds), dimension, from, to, rule, evidence, caused by]

The change id is left out: it is a digest of the customer, the dimension, from, to and the cause
(`streams/core/ids.py`), so `read` computes it again from the entry and the customer it belongs to.

The names are stored as codes (`streams/core/codes.py`): the dimension is `L` (lifecycle) or `T` (trait),
`from` and `to` are the types' codes, the evidence's keys the signals' codes. The rule is `0` when it is
the one the change's own type names (`lifecycle.loyal` for a change to `loyal`), which most are, and `1`
when it is the clearing of the type left (`trait.angry.cleared`). The cause is `[rest]` when it is an
event id that starts with the customer's id (the generator's and many producers' ids do), and `1` when
it is the inactivity check at the change's own time (`inactivity@<at>`). That is about 80 bytes an entry.

A customer's history is one Redis string, the entries joined by newlines, latest first (`commit.lua`
writes it): Redis 7.0 keeps even a short list as a quicklist, about 80 bytes more. Earlier versions kept
a list; `stored_entries` reads either, and the next commit of that customer turns the list into a string.

`read` turns an entry back into the named form of a type change (evidence floats kept to three
decimals); it also reads the entries of earlier versions: the same array with names (dimension `l` or
`t`), that array with the change id first, and the full type-change JSON.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from redis.exceptions import ResponseError

from schemas import TypeChange
from streams.core import codes, ids

#: The dimension's code in an entry with coded names, and in the entries of earlier versions (names).
_DIMENSIONS = {"lifecycle": "L", "trait": "T"}
_CODED = {short: name for name, short in _DIMENSIONS.items()}
_NAMES = {"l": "lifecycle", "t": "trait"}
#: The cause of a change made by the inactivity check, before its time.
_INACTIVITY = "inactivity@"


def _default_rule(dimension: str, to: str | None, from_: str | None) -> str:
    return f"{dimension}.{to if to is not None else from_}"


def _compact(value: Any) -> Any:
    """Evidence as kept: floats to three decimals, non-finite ones (nothing to measure from) as null."""
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_compact(v) for v in value]
    return value


def _compact_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """`_compact` of a reason's evidence, spelled out for its usual values (numbers, text, None): it runs
    for every type change the worker writes."""
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        kind = type(value)
        if kind is float:
            out[key] = round(value, 3) if math.isfinite(value) else None
        elif kind is int or kind is str or kind is bool or value is None:
            out[key] = value
        else:
            out[key] = _compact(value)
    return out


def _rule_code(rule: str, dimension: str, to: str | None, from_: str | None) -> int | str:
    if rule == _default_rule(dimension, to, from_):
        return 0
    if rule == f"{dimension}.{from_}.cleared":
        return 1
    return rule


def _rule_name(rule: int | str, dimension: str, to: str | None, from_: str | None) -> str:
    if rule == 0:
        return _default_rule(dimension, to, from_)
    if rule == 1:
        return f"{dimension}.{from_}.cleared"
    return str(rule)


def _cause_code(caused_by: Any, customer_id: str, at: float) -> Any:
    if isinstance(caused_by, str):
        if caused_by.startswith(customer_id):
            return [caused_by[len(customer_id) :]]
        if caused_by.startswith(_INACTIVITY) and caused_by == _INACTIVITY + _iso(at):
            return 1
    return caused_by


def _cause_name(cause: Any, customer_id: str, at: float) -> Any:
    if isinstance(cause, list) and len(cause) == 1 and isinstance(cause[0], str):
        return customer_id + cause[0]
    if cause == 1 and not isinstance(cause, bool):
        return _INACTIVITY + _iso(at)
    return cause


def entry(change: TypeChange) -> bytes:
    """The history entry of a type change (compact JSON: no newline)."""
    dimension = change.dimension.value
    rule = change.reason.rule
    to, from_ = change.to, change.from_
    types = codes.types_of(dimension)
    at = round(change.at.timestamp(), 3)
    evidence = codes.EVIDENCE.by_name
    fields = [
        at,
        _DIMENSIONS.get(dimension, dimension),
        None if from_ is None else types.encode(from_),
        None if to is None else types.encode(to),
        _rule_code(rule, dimension, to, from_),
        {evidence.get(k) or codes.EVIDENCE.encode(k): v for k, v in _compact_evidence(change.reason.evidence).items()},
        _cause_code(change.caused_by, change.customer_id, at),
    ]
    return to_json(fields)


def split(stored: bytes | str | None) -> list[bytes | str]:
    """The entries of a stored history string, latest first."""
    if not stored:
        return []
    parts: list[bytes | str] = []
    parts.extend(stored.split(b"\n") if isinstance(stored, bytes) else stored.split("\n"))
    return parts


def stored_entries(client: Any, key: str) -> list[bytes | str]:
    """The entries under a history key (a synchronous client's), whether a string or an earlier version's list."""
    try:
        return split(client.get(key))
    except ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        return client.lrange(key, 0, -1)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def read(raw: bytes | str, customer_id: str) -> dict[str, Any]:
    """A stored entry of this customer's as a type change's fields (`change_id`, `at`, `dimension`, `from`,
    `to`, `reason`, `caused_by`), whichever form it was stored in."""
    value = json.loads(raw)
    if isinstance(value, dict):  # the full type change of earlier versions
        return value
    if len(value) == 8:  # an earlier version's entry, with the change id
        change_id, at, dimension, from_, to, rule, evidence, caused_by = value
        dimension = _NAMES.get(dimension, dimension)
        rule = rule or _default_rule(dimension, to, from_)
    elif value[1] in _CODED:  # names as codes
        at, dimension, from_, to, rule, evidence, caused_by = value
        dimension = _CODED[dimension]
        types = codes.types_of(dimension)
        from_ = None if from_ is None else types.decode(from_)
        to = None if to is None else types.decode(to)
        rule = _rule_name(rule, dimension, to, from_)
        evidence = {codes.EVIDENCE.decode(k): v for k, v in evidence.items()}
        caused_by = _cause_name(caused_by, customer_id, at)
        change_id = ids.change_id(customer_id, dimension, from_, to, caused_by)
    else:  # an earlier version's entry, with the names
        at, dimension, from_, to, rule, evidence, caused_by = value
        dimension = _NAMES.get(dimension, dimension)
        rule = rule or _default_rule(dimension, to, from_)
        change_id = ids.change_id(customer_id, dimension, from_, to, caused_by)
    return {
        "change_id": change_id,
        "at": _iso(at),
        "dimension": dimension,
        "from": from_,
        "to": to,
        "reason": {"rule": rule, "evidence": evidence},
        "caused_by": caused_by,
    }
