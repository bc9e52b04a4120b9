"""A customer's change history in Redis: compact entries, the latest few, for `journey explain` and profiles.

The history is the largest thing Redis keeps per customer, so an entry holds only what explain and
the profile show, as a JSON array without field names:

    [at (epoch seconds), dimension, from, to, rule, evidence, caused by]

The change id is left out: it is a digest of the customer, the dimension, from, to and the cause
(`streams/core/ids.py`), so `read` computes it again from the entry and the customer it belongs to.

The dimension is `l` (lifecycle) or `t` (trait); the rule is `0` when it is the one the change's own
type names (`lifecycle.loyal` for a change to `loyal`), which most are. `read` turns an entry back into
the named form of a type change (evidence floats kept to three decimals); it also reads the entries
of earlier versions: the same array with the change id first, and the full type-change JSON.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from schemas import TypeChange
from streams.core import ids

_DIMENSIONS = {"lifecycle": "l", "trait": "t"}
_NAMES = {short: name for name, short in _DIMENSIONS.items()}


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


def entry(change: TypeChange) -> bytes:
    """The history entry of a type change (compact JSON: no newline)."""
    dimension = change.dimension.value
    rule = change.reason.rule
    to, from_ = change.to, change.from_
    fields = [
        round(change.at.timestamp(), 3),
        _DIMENSIONS.get(dimension, dimension),
        from_,
        to,
        0 if rule == _default_rule(dimension, to, from_) else rule,
        _compact_evidence(change.reason.evidence),
        change.caused_by,
    ]
    return to_json(fields)


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
    else:
        at, dimension, from_, to, rule, evidence, caused_by = value
        dimension = _NAMES.get(dimension, dimension)
        change_id = ids.change_id(customer_id, dimension, from_, to, caused_by)
    return {
        "change_id": change_id,
        "at": _iso(at),
        "dimension": dimension,
        "from": from_,
        "to": to,
        "reason": {"rule": rule or _default_rule(dimension, to, from_), "evidence": evidence},
        "caused_by": caused_by,
    }
