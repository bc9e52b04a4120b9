"""A reused event id with other content is a conflict, dead-lettered with both fingerprints; an exact re-send
stays a quiet duplicate; states written before contents were remembered still decode and dedupe.

A page view, then a 500 EUR purchase with the same event id, used to drop the purchase as a duplicate
without a trace.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas import TouchpointEvent
from streams.core import CustomerState, apply_event, ids
from streams.core.model import load_model
from streams.replay.run import run_replay
from streams.replay.sources import iter_records

MODEL = load_model()
#: c1's record as the previous version wrote it (page view e1, purchase e2): ids only under `re`, no `rc`.
OLD_RECORD = (
    b'{"id":"old-1","fs":1772359200.0,"ls":1772445600.0,"st":{"pre_purchase":1772359200.0,"purchase":1772445600.0},'
    b'"n":{"page_view":1,"purchase":1},"ch":["web"],"p":1,"sp":40.0,"fp":1772445600.0,"lp":1772445600.0,"be":1,'
    b'"lt":"new","lts":1772445600.0,"tr":{"efficient":1772445600.0},"ck":1772445600.0,"du":1780221600.0,'
    b'"as":{"lead_nurture_sequence":1772359200.0,"welcome_onboarding":1772445600.0,'
    b'"concise_options_summary":1772445600.0},"ml":[1772359200.0,1772445600.0,1772445600.0],"re":"_LMgnF0JZ5Q9BnIh"}'
)


def page_view(event_id: str = "e1", customer: str = "c1", day: int = 1) -> dict:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": f"2026-03-{day:02d}T10:00:00Z",
        "stage": "pre_purchase",
        "touchpoint": "page_view",
        "channel": "web",
    }


def purchase(event_id: str = "e1", customer: str = "c1", day: int = 2, amount: float = 500) -> dict:
    return {
        **page_view(event_id, customer, day),
        "stage": "purchase",
        "touchpoint": "purchase",
        "payload": {"kind": "order", "amount": amount, "currency": "EUR"},
    }


def parsed(data: dict | str) -> TouchpointEvent:
    return TouchpointEvent.model_validate_json(data if isinstance(data, str) else json.dumps(data))


def test_the_same_id_with_other_content_is_refused_as_a_conflict_naming_both_fingerprints():
    first, second = parsed(page_view()), parsed(purchase())
    state = apply_event(None, first, MODEL).state
    before = state.to_json()
    out = apply_event(state, second, MODEL, in_place=True)
    assert not out.duplicate and out.conflict and out.refused is not None
    remembered, now = ids.content_fingerprint(first), ids.content_fingerprint(second)
    assert remembered != now and repr(remembered) in out.refused and repr(now) in out.refused, out.refused
    assert out.refused.startswith("conflict:") and "'e1'" in out.refused and "'c1'" in out.refused
    assert out.changes == [] and out.actions == [] and state.to_json() == before, "a conflict changes nothing"
    assert state.purchases == 0


def test_an_exact_re_send_stays_a_quiet_duplicate_however_its_json_is_written():
    state = apply_event(None, parsed(purchase(amount=12.5)), MODEL).state
    written_otherwise = (
        '{"payload": {"currency": "EUR", "amount": 12.50, "kind": "order"}, "channel": "web",'
        ' "touchpoint": "purchase", "stage": "purchase", "occurred_at": "2026-03-02T10:00:00+00:00",'
        ' "customer_id": "c1", "event_id": "e1", "schema_version": 1}'
    )
    for again in (parsed(purchase(amount=12.5)), parsed(written_otherwise)):
        out = apply_event(state, again, MODEL)
        assert out.duplicate and out.refused is None and not out.conflict
        assert out.changes == [] and out.actions == []


def test_a_state_of_the_previous_version_still_decodes_and_dedupes():
    """Its ids have no content beside them: a re-send of one is a duplicate, whatever it says (as before)."""
    state = CustomerState.from_json(OLD_RECORD)
    assert state.recent_contents == "" and state.seen(ids.event_fingerprint("e1"))
    out = apply_event(state, parsed(purchase("e1", "old-1")), MODEL)
    assert out.duplicate and out.refused is None
    # A new event is remembered with its content, beside the old ids: conflicts on it are seen.
    state = apply_event(state, parsed(page_view("e3", "old-1", 5)), MODEL).state
    assert len(state.recent_contents) == ids.CONTENT_CHARS and len(state.recent_events) == 3 * ids.FINGERPRINT_CHARS
    assert apply_event(state, parsed(purchase("e3", "old-1", 5)), MODEL).conflict
    assert apply_event(state, parsed(page_view("e3", "old-1", 5)), MODEL).duplicate
    assert apply_event(state, parsed(purchase("e2", "old-1", 9)), MODEL).duplicate  # old id: content unknown
    assert CustomerState.from_json(state.to_json()) == state


def test_contents_stay_aligned_with_their_ids_as_the_window_slides():
    model = load_model(dedupe_window=3)
    state = CustomerState.from_json(OLD_RECORD)  # two ids without contents
    sent = []
    for n in range(5):
        data = page_view(f"n{n}", "old-1", 5 + n)
        sent.append(data)
        state = apply_event(state, parsed(data), model).state
        assert len(state.recent_contents) // ids.CONTENT_CHARS == min(n + 1, 3)
    for data in sent[-3:]:
        assert apply_event(state, parsed(data), model).duplicate
        assert apply_event(state, parsed({**data, "channel": "app"}), model).conflict
    assert not apply_event(state, parsed({**sent[1], "channel": "app"}), model).conflict  # out of the window


def test_the_offline_replay_dead_letters_a_conflict_and_counts_the_re_send(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    lines = [page_view(), page_view(), purchase(), purchase("e2")]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = run_replay(iter_records(events), MODEL, out_dir=tmp_path / "out")
    dead = [json.loads(line) for line in (tmp_path / "out" / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["line"] for d in dead] == [3] and dead[0]["error"].startswith("conflict:"), dead
    assert repr(ids.content_fingerprint(parsed(page_view()))) in dead[0]["error"]
    assert (report.records, report.events, report.duplicates, report.dead_letters) == (4, 3, 1, 1)
    changes = [json.loads(line) for line in (tmp_path / "out" / "changes.jsonl").read_text().splitlines()]
    assert {c["caused_by"] for c in changes} <= {"e1", "e2"} and any(c["caused_by"] == "e2" for c in changes)


#: For each field of the schema, another valid value (the content fingerprint must change with it).
OTHER_VALUES = {
    "occurred_at": "2026-03-02T10:00:00.001Z",
    "stage": ("post_purchase", "refund"),  # with a kind that belongs to it
    "touchpoint": "product_view",
    "channel": "app",
    "country": "BR",
    "language": "pt-BR",
    "segment": "b2c",
    "timezone": "America/Sao_Paulo",
    "payload": {"kind": "order", "amount": 500, "currency": "USD"},
    "order.amount": 501,
    "order.currency": "USD",
    "order.discount": 1,
    "order.coupon": "SAVE",
    "order.order_id": "o-2",
    "score.csat": 4,
    "score.nps": 9,
    "score.ces": 2,
    "score.rating": 5,
    "score.sentiment": 0.5,
    "support.topic": "billing",
    "support.sentiment": -0.5,
    "support.wait_seconds": 60,
}
#: Not content: the same for every event a state compares (the id itself, the customer, the one version).
NOT_CONTENT = {"event_id", "customer_id", "schema_version"}
BASES = {
    "order": {**purchase(amount=500), "country": "PT", "language": "pt-PT", "segment": "b2b"},
    "score": {
        **page_view(day=2),
        "stage": "post_purchase",
        "touchpoint": "survey_response",
        "payload": {"kind": "score", "csat": 3, "nps": 7, "ces": 4, "rating": 3, "sentiment": 0.1},
    },
    "support": {
        **page_view(day=2),
        "stage": "post_purchase",
        "touchpoint": "support_ticket",
        "payload": {"kind": "support", "topic": "how to", "sentiment": 0.1, "wait_seconds": 30},
    },
}


def test_every_field_of_the_schema_takes_part_in_the_content_fingerprint():
    from schemas import OrderPayload, ScorePayload, SupportPayload

    names = [n for n in TouchpointEvent.model_fields if n not in NOT_CONTENT]
    for model in (OrderPayload, ScorePayload, SupportPayload):
        kind = model.model_fields["kind"].default
        names += [f"{kind}.{n}" for n in model.model_fields if n != "kind"]
    missing = [n for n in names if n not in OTHER_VALUES]
    assert not missing, f"new fields {missing}: add them to ids.content_fingerprint and to OTHER_VALUES"
    for name in names:
        kind, _, inner = name.rpartition(".")
        base = BASES[kind or "order"]
        changed = json.loads(json.dumps(base))
        if kind:
            changed["payload"][inner] = OTHER_VALUES[name]
        elif name == "stage":
            changed["stage"], changed["touchpoint"] = OTHER_VALUES[name]
        elif name == "touchpoint":
            changed["touchpoint"], changed["stage"] = OTHER_VALUES[name], "purchase"
            changed.pop("payload")
        else:
            changed[name] = OTHER_VALUES[name]
        a, b = ids.content_fingerprint(parsed(base)), ids.content_fingerprint(parsed(changed))
        assert a != b, f"{name} does not change the content fingerprint"


#: A record as the version before the shorter fingerprints wrote it (8 + 6 characters, under `re` / `rc`):
#: page view e1 and purchase e2 of `old-2`, each with its content.
def _longer_fingerprints_record() -> bytes:
    from base64 import urlsafe_b64encode
    from hashlib import blake2b

    def long_id(event_id: str) -> str:
        return urlsafe_b64encode(blake2b(event_id.encode(), digest_size=6).digest()).decode()

    state = CustomerState.from_json(OLD_RECORD.replace(b'"re":"_LMgnF0JZ5Q9BnIh"', b'"re":""'))
    contents = [
        ids.content_fingerprint(parsed(page_view("e1", "old-2"))),
        ids.content_fingerprint(parsed(purchase("e2", "old-2"))),
    ]
    raw = state.to_json().rstrip(b"}")
    # the earlier content fingerprint was 6 characters of which today's 4 are the start: pad with 2 others
    events, padded = long_id("e1") + long_id("e2"), "".join(c + "xy" for c in contents)
    return raw + f',"re":"{events}","rc":"{padded}"}}'.encode()


def test_a_state_with_the_longer_fingerprints_still_dedupes_and_sees_conflicts():
    raw = _longer_fingerprints_record()
    assert b'"re":"' in raw and len(CustomerState.from_json(raw).recent_events) == 2 * ids.FINGERPRINT_CHARS
    state = CustomerState.from_json(raw)
    assert state.recent_contents == "".join(
        ids.content_fingerprint(parsed(e)) for e in (page_view("e1", "old-2"), purchase("e2", "old-2"))
    )
    assert apply_event(state, parsed(page_view("e1", "old-2")), MODEL).duplicate  # the same re-sent
    assert apply_event(state, parsed(purchase("e1", "old-2")), MODEL).conflict  # the id with other content
    assert not apply_event(state, parsed(page_view("e9", "old-2")), MODEL).duplicate
    assert b'"re"' not in state.to_json() and CustomerState.from_json(state.to_json()) == state
