"""One customer's profile as data: what `journey explain` shows, as a JSON-ready dict.

The worker's `GET /customers/{customer_id}` serves it, and anything else that tells what a
customer is now (explain, a later engine) can build it from the same three things: the
stored state, the stored history of type changes, and the rules and playbook in force.

Like explain, it judges the state again with the rules in force at the instant the rules last
judged the customer, so the rules it lists are the ones that held when the worker decided.
Times are ISO-8601 UTC strings; the shape is described in `streams/http/openapi.yaml`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from streams.core.engine import next_due
from streams.core.model import Model
from streams.core.playbook.playbook import suppression_kind
from streams.core.state import CustomerState

#: The fields of a stored type change that the profile passes on (the history may hold more).
CHANGE_FIELDS = ("change_id", "at", "dimension", "from", "to", "caused_by")


def when(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC instant with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """A signal value JSON can carry: non-finite floats (an age with nothing to measure from) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _change(stored: Mapping[str, Any]) -> dict[str, Any]:
    reason = stored.get("reason") or {}
    return {
        **{name: stored.get(name) for name in CHANGE_FIELDS},
        "rule": reason.get("rule"),
        "evidence": _plain(reason.get("evidence") or {}),
    }


def build_profile(state: CustomerState, history: Iterable[Mapping[str, Any]], model: Model) -> dict[str, Any]:
    """The profile of one customer: types with the time each was entered, the rules that hold with their
    evidence, the churn scores with their inputs (null without a churn model), marketing consent per channel, recent type changes (newest first, as stored), and actions sent
    (or held out: the customer is in the action's holdout group), suppressed and deferred."""
    rules = model.rules
    at = state.checked_at if state.checked_at is not None else state.last_seen
    values = rules.values(state, at)
    decided = rules.lifecycle_type(values)
    holding = [
        {"rule": f"lifecycle.{rule.type}", "decides": rule is decided, "evidence": _plain(rules.evidence(rule, values))}
        for rule in rules.lifecycle
        if rule.when(values)
    ]
    holding += [
        {"rule": f"trait.{rule.type}", "decides": False, "evidence": _plain(rules.evidence(rule, values))}
        for rule in rules.traits
        if rule.when(values)
    ]
    sent = sorted(state.actions_sent.items(), key=lambda item: (-item[1], item[0]))
    playbook = model.playbook
    return {
        "customer_id": state.customer_id,
        "lifecycle": {"type": state.lifecycle, "since": when(state.lifecycle_since)},
        "traits": [{"type": name, "since": when(since)} for name, since in sorted(state.traits.items())],
        "judged_at": when(at),
        "next_check_at": when(next_due(state)),
        "first_seen": when(state.first_seen),
        "last_seen": when(state.last_seen),
        "timezone": model.playbook.zone_name(state),
        "rules_source": rules.source,
        "playbook_source": model.playbook.source,
        "rules": holding,
        "churn": rules.churn_view(state, at),
        "consent": [
            {
                "channel": channel,
                "policy": policy,
                "granted": None if said is None else said[0],
                "at": None if said is None else when(said[1]),
                "source": None if said is None else said[2],
                "marketing_allowed": allowed,
            }
            for channel, policy, said, allowed in playbook.consent_view(state)
        ],
        "changes": [_change(change) for change in history],
        "actions": {
            "sent": [
                {"action": name, "last_sent": when(sent_at), "held_out": playbook.held_out(state.customer_id, name)}
                for name, sent_at in sent
            ],
            "suppressed": [
                {"action": name, "at": when(suppressed_at), "reason": reason, "kind": suppression_kind(reason)}
                for suppressed_at, name, reason in reversed(state.suppressed_log)
            ],
            "suppressed_total": state.actions_suppressed,
            "deferred": [
                {"action": name, "until": when(until), "decided_at": when(decided), "triggered_by": change_id}
                for until, decided, name, change_id, _ in state.deferred
            ],
        },
    }
