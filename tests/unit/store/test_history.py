"""History entries: compact, without the change id, which is computed again on the way out."""

import json
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
