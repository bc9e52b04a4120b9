"""History entries: compact, without the change id, which is computed again on the way out."""

import json
from datetime import datetime
from pathlib import Path

from schemas import TypeChange
from streams.store.history import entry, read

GOLDEN_CHANGES = Path(__file__).resolve().parents[2] / "golden" / "sample" / "changes.jsonl"


def test_every_change_of_the_sample_reads_back_with_its_id():
    lines = GOLDEN_CHANGES.read_text().splitlines()
    assert lines
    for line in lines:
        change = TypeChange.model_validate_json(line)
        raw = entry(change)
        assert change.change_id.encode() not in raw  # left out: it is a digest of the rest
        back = read(raw, change.customer_id)
        assert back["change_id"] == change.change_id
        assert (back["dimension"], back["from"], back["to"], back["caused_by"]) == (
            str(change.dimension),
            change.from_,
            change.to,
            change.caused_by,
        )


def test_an_entry_of_the_previous_version_keeps_its_stored_id():
    old = b'["chg_0123456789abcdef01234567",1783758084.775,"l","at_risk","lapsed",0,{"days":181.0},"clock:x"]'
    back = read(old, "cust-1")
    assert back["change_id"] == "chg_0123456789abcdef01234567"
    assert back["reason"]["rule"] == "lifecycle.lapsed" and back["dimension"] == "lifecycle"
    assert json.loads(json.dumps(back))["at"].startswith("2026-")


def test_every_change_of_the_sample_reads_back_whole_and_small():
    """Names go in as codes and come out as the names: rule and evidence as the change had them."""
    lines = GOLDEN_CHANGES.read_text().splitlines()
    sizes = []
    for line in lines:
        change = TypeChange.model_validate_json(line)
        raw = entry(change)
        sizes.append(len(raw))
        back = read(raw, change.customer_id)
        assert back["reason"]["rule"] == change.reason.rule
        assert back["reason"]["evidence"] == json.loads(json.dumps(_rounded(change.reason.evidence)))
        assert abs(datetime.fromisoformat(back["at"]) - change.at).total_seconds() <= 0.0005  # kept to the ms
    assert sum(sizes) / len(sizes) < 85  # bytes an entry: what keeps the history small (README Capacity)


def _rounded(evidence: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in evidence.items()}


def test_an_entry_with_names_of_the_previous_version_reads_the_same():
    """What the version before the codes wrote (names, no change id) still reads, id computed again."""
    old = (
        b'[1768415624.042,"t",null,"angry",0,{"negative_contacts_14d":1,"days_since_complaint":null},'
        b'"cust-001668-0005"]'
    )
    back = read(old, "cust-001668")
    assert back["dimension"] == "trait" and back["to"] == "angry" and back["from"] is None
    assert back["reason"] == {
        "rule": "trait.angry",
        "evidence": {"negative_contacts_14d": 1, "days_since_complaint": None},
    }
    assert back["caused_by"] == "cust-001668-0005"
    assert back["change_id"].startswith("chg_")
    change = TypeChange.model_validate(
        {
            "change_id": back["change_id"],
            "customer_id": "cust-001668",
            "dimension": "trait",
            "from": None,
            "to": "angry",
            "reason": back["reason"],
            "caused_by": back["caused_by"],
            "at": back["at"],
        }
    )
    assert read(entry(change), "cust-001668") == back  # the coded entry of the same change reads the same


def test_names_outside_the_tables_and_odd_causes_pass_through():
    change = TypeChange.model_validate(
        {
            "change_id": "chg_x",
            "customer_id": "c-1",
            "dimension": "trait",
            "from": "vip_whale",
            "to": None,
            "reason": {"rule": "custom.rule", "evidence": {"my_signal": 2.5, "since": "2026-01-01"}},
            "caused_by": "inactivity@2026-01-01T00:00:00.000000Z",
            "at": "2026-02-01T00:00:00Z",
        }
    )
    back = read(entry(change), "c-1")
    assert (back["from"], back["to"], back["reason"]["rule"]) == ("vip_whale", None, "custom.rule")
    assert back["reason"]["evidence"] == {"my_signal": 2.5, "since": "2026-01-01"}
    assert back["caused_by"] == "inactivity@2026-01-01T00:00:00.000000Z"  # not the change's own time: kept whole
