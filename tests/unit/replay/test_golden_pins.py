"""Pins on the sample's outputs that regenerating the golden files cannot move.

The golden files (tests/golden/sample) are a change detector, not an oracle: whoever regenerates
them after a change accepts whatever the code now gives, a regression included. This test holds
two things they cannot absorb:

- the lifecycle path of five sample customers, each change with its cause and instant, written
  by hand from their events in streams/local/data/sample-journeys.jsonl and the shipped rules
  (the derivation is beside each customer);
- a few literal change and action ids, copied once from the golden files and checked by reading
  them: every id belongs to the customer, type and cause it sits with. An id is a digest of
  what the change is (`streams/core/ids.py`), so a moved instant or another cause moves it.

A change meant to alter these customers' outputs updates this file too, in the same commit,
saying why. The five customers are replayed on their own: a customer's outputs depend on their
own events only.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from streams.core.model import load_model
from streams.local.sample import SAMPLE_FILE
from streams.replay.run import run_replay
from streams.replay.sources import iter_records

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "sample"
UNTIL = "2027-01-01T00:00:00Z"

# Event times are kept to the millisecond. "+3 x rhythm" is max(30, 3 x mean days between purchases)
# after the last purchase (at_risk); lapsed is max(180, 6 x rhythm) after it. first_rhythm_days = 30.
PATHS: dict[str, list[tuple[str, str, str]]] = {
    # Four events, none a purchase or a free signup: a prospect from the first event to the end.
    "cust-000060": [
        ("prospect", "cust-000060-0000", "2026-01-05T19:11:53.341Z"),
    ],
    # One purchase (0003, 2026-02-24T10:46:52.787Z): new; rhythm 30 days (one purchase), so at risk
    # after max(30, 90) = 90 days, lapsed after max(180, 180) = 180 days.
    "cust-000049": [
        ("prospect", "cust-000049-0000", "2026-02-19T13:49:07.480Z"),
        ("new", "cust-000049-0003", "2026-02-24T10:46:52.787Z"),
        ("at_risk", "inactivity", "2026-05-25T10:46:52.787Z"),
        ("lapsed", "inactivity", "2026-08-23T10:46:52.787Z"),
    ],
    # Purchases 0005 (02-05T14:49:20.778), 0009, 0011 (03-06T14:02:48.648): loyal on the third, no
    # score or referral (no advocate). Rhythm 28d 23:13:27.870 / 2; at risk 1.5 x 28d 23:13:27.870
    # = 43d 10:50:11.805 after the last purchase; lapsed 180 days after it (6 x 14.5 < 180).
    "cust-000069": [
        ("prospect", "cust-000069-0000", "2026-01-23T14:49:47.072Z"),
        ("new", "cust-000069-0005", "2026-02-05T14:49:20.778Z"),
        ("loyal", "cust-000069-0011", "2026-03-06T14:02:48.648Z"),
        ("at_risk", "inactivity", "2026-04-19T00:53:00.453Z"),
        ("lapsed", "inactivity", "2026-09-02T14:02:48.648Z"),
    ],
    # Purchases 0007 (02-03T04:26:59.274), 0013, 0015 (02-28T22:56:35.304); a 5-star review (0008)
    # and no negative review; its one negative contact (0009, -0.64 on 02-04) left the 14-day window
    # on 02-18. So the third purchase makes an advocate, not a loyal customer. At risk 1.5 x
    # 25d 18:29:36.030 = 38d 15:44:24.045 after the last purchase; lapsed 180 days after it.
    "cust-000033": [
        ("prospect", "cust-000033-0000", "2026-01-18T12:28:07.321Z"),
        ("new", "cust-000033-0007", "2026-02-03T04:26:59.274Z"),
        ("advocate", "cust-000033-0015", "2026-02-28T22:56:35.304Z"),
        ("at_risk", "inactivity", "2026-04-08T14:40:59.349Z"),
        ("lapsed", "inactivity", "2026-08-27T22:56:35.304Z"),
    ],
    # Purchases 0003 (04-20T18:09:57.000), 0006, 0010 (05-14T14:09:09.702): loyal. At risk 1.5 x
    # 23d 19:59:12.702 = 35d 17:58:49.053 later. The fourth purchase (0013, 08-07) brings them back
    # as loyal (an NPS of 8 on 08-08 is neither promoter nor detractor); after the fifth (0017,
    # 08-20T19:34:17.563) the rhythm is 122d 01:24:20.563 / 4, at risk 0.75 x that = 91d 13:03:15.422
    # later. Lapsing would take 180 days: past the end of the replay.
    "cust-000238": [
        ("prospect", "cust-000238-0000", "2026-04-10T14:04:57.862Z"),
        ("new", "cust-000238-0003", "2026-04-20T18:09:57.000Z"),
        ("loyal", "cust-000238-0010", "2026-05-14T14:09:09.702Z"),
        ("at_risk", "inactivity", "2026-06-19T08:07:58.755Z"),
        ("loyal", "cust-000238-0013", "2026-08-07T12:19:46.477Z"),
        ("at_risk", "inactivity", "2026-11-20T08:37:32.985Z"),
    ],
}

#: cust-000049's every change and action, copied from the golden files. The four lifecycle changes
#: above; the `international` trait (country RU) on the first event; `impulsive` (0.275 h from the
#: catalogue view to the purchase, no review read) and `efficient` (three events before buying, no
#: support) on the purchase. Actions: each type's trigger in the playbook, except that `efficient`'s
#: concise_options_summary would be the fourth marketing message in a week (cap 3: the lead nurture,
#: the welcome and the urgency promotion came first), so it is suppressed.
CHANGE_IDS = {
    ("cust-000049", "lifecycle", "prospect"): "chg_7077a080dbb3e71b85198aa9",
    ("cust-000049", "trait", "international"): "chg_fe5b427d94970dc7639460ff",
    ("cust-000049", "lifecycle", "new"): "chg_c30368c7fbd96c6bdf80f86c",
    ("cust-000049", "trait", "impulsive"): "chg_0a726ba87ce0b5751c45c9a2",
    ("cust-000049", "trait", "efficient"): "chg_3418239e5cba9bfccd15b653",
    ("cust-000049", "lifecycle", "at_risk"): "chg_9da8c2cdcc58e077c57d8bad",
    ("cust-000049", "lifecycle", "lapsed"): "chg_16abe8b138db82efbc32811d",
    # of the other customers: an advocate made by an event, and two at-risk changes made by time
    # (caused by `inactivity@<instant>`: their ids move with the at-risk instant)
    ("cust-000033", "lifecycle", "advocate"): "chg_376456619cc954d1aa2fef3a",
    ("cust-000033", "lifecycle", "at_risk"): "chg_1b89325df15cbce073474066",
    ("cust-000069", "lifecycle", "at_risk"): "chg_a021173ad70289efded745a3",
}
#: action -> (its id, the change that triggered it)
ACTION_IDS = {
    "lead_nurture_sequence": ("act_c5d4c074f1bdc0f61cc73200", "chg_7077a080dbb3e71b85198aa9"),
    "multilingual_routing": ("act_63efd43826e17c1f65a26e9c", "chg_fe5b427d94970dc7639460ff"),
    "welcome_onboarding": ("act_1d5be3fa8ecd17e657137567", "chg_c30368c7fbd96c6bdf80f86c"),
    "urgency_promotion": ("act_a60180eb39e10afcd5a70d97", "chg_0a726ba87ce0b5751c45c9a2"),
    "win_back_offer": ("act_adf9ebb885d5e27af5365c6d", "chg_9da8c2cdcc58e077c57d8bad"),
    "last_win_back": ("act_dbbeee8fdd4fe506dffa298d", "chg_16abe8b138db82efbc32811d"),
}


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, list[dict]]:
    """The replay of the pinned customers' sample events, as the golden files are made (same `--until`)."""
    tmp = tmp_path_factory.mktemp("pins")
    wanted = set(PATHS)
    lines = [line for line in SAMPLE_FILE.read_text().splitlines() if json.loads(line)["customer_id"] in wanted]
    source = tmp / "pinned.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp / "out"
    run_replay(iter_records(source), load_model(), until=datetime.fromisoformat(UNTIL), out_dir=out)
    return {"changes": _lines(out / "changes.jsonl"), "actions": _lines(out / "actions.jsonl")}


@pytest.mark.parametrize("customer", sorted(PATHS))
def test_the_lifecycle_path_is_the_hand_derived_one(outputs, customer):
    got = [c for c in outputs["changes"] if c["customer_id"] == customer and c["dimension"] == "lifecycle"]
    expected = PATHS[customer]
    assert [c["to"] for c in got] == [to for to, _, _ in expected]
    froms = [None, *[to for to, _, _ in expected[:-1]]]
    assert [c["from"] for c in got] == froms
    for change, (to, cause, at) in zip(got, expected, strict=True):
        if cause == "inactivity":
            assert change["caused_by"].startswith("inactivity@"), change
        else:
            assert change["caused_by"] == cause, change
        assert _instant(change["at"]) == pytest.approx(_instant(at), abs=0.001), (to, change["at"], at)


def test_the_pinned_change_ids(outputs):
    got = {(c["customer_id"], c["dimension"], c["to"]): c["change_id"] for c in outputs["changes"]}
    assert {key: got.get(key) for key in CHANGE_IDS} == CHANGE_IDS
    every_change_of_49 = {key for key in got if key[0] == "cust-000049"}
    assert every_change_of_49 == {key for key in CHANGE_IDS if key[0] == "cust-000049"}


def test_the_pinned_action_ids(outputs):
    got = {
        a["action"]: (a["action_id"], a["triggered_by"])
        for a in outputs["actions"]
        if a["customer_id"] == "cust-000049"
    }
    assert got == ACTION_IDS, "every action of cust-000049, and no other (concise_options_summary is capped)"


def test_the_golden_files_agree_with_the_pins():
    """Regenerated golden files that moved a pin mean this file must change too (and say why)."""
    changes = _lines(GOLDEN / "changes.jsonl")
    actions = _lines(GOLDEN / "actions.jsonl")
    golden_changes = {(c["customer_id"], c["dimension"], c["to"]): c["change_id"] for c in changes}
    assert {key: golden_changes.get(key) for key in CHANGE_IDS} == CHANGE_IDS
    golden_actions = {a["action_id"] for a in actions}
    assert {action_id for action_id, _ in ACTION_IDS.values()} <= golden_actions
    for customer, expected in PATHS.items():
        path = [c["to"] for c in changes if c["customer_id"] == customer and c["dimension"] == "lifecycle"]
        assert path == [to for to, _, _ in expected], customer
