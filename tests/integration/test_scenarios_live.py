"""A representative subset of the type scenarios through the real broker, worker and Redis.

The scenarios whose journeys are events only (no waiting on the clock) go in together, each
customer keyed to its own partition; each must show its type change with its rule and cause,
and its action (or the suppression of it), on the real output topics; each near-miss customer
must not get the type.
"""

from __future__ import annotations

import pytest
from scenarios import SCENARIOS, Advance

pytestmark = pytest.mark.integration

EVENT_ONLY = [s for s in SCENARIOS if not any(isinstance(step, Advance) for step in s.events + s.near_miss_events)]


def test_event_only_scenarios_through_the_live_pipeline(deploy, engine):
    assert len(EVENT_ONLY) >= 10, "the subset should stay representative"
    d = deploy(JOURNEY_CLOCK="event")
    steps = [step for s in EVENT_ONLY for step in s.events + s.near_miss_events]
    d.produce([step.model_dump(mode="json", by_alias=True, exclude_none=True) for step in steps])
    d.start_worker()
    d.wait_caught_up(timeout=90)
    changes, actions = d.changes(), d.actions()
    states = d.states()
    for s in EVENT_ONLY:
        want = s.expect_type
        mine = [c for c in changes if c["customer_id"] == s.customer]
        match = [
            c
            for c in mine
            if (c["dimension"], c["from"], c["to"], c["reason"]["rule"])
            == (want.dimension, want.from_, want.to, want.rule)
        ]
        assert match, f"{s.name}: no {want.rule} change among {[(c['from'], c['to']) for c in mine]}"
        change = match[0]
        assert change["caused_by"] == want.caused_by, s.name
        for key, value in want.evidence.items():
            assert change["reason"]["evidence"][key] == pytest.approx(value), f"{s.name}: evidence {key}"
        sent = [a["action"] for a in actions if a["triggered_by"] == change["change_id"]]
        if s.expect_suppressed is None:
            assert sent == [s.expect_action], s.name
        else:
            assert sent == [], s.name
            log = states[s.customer]["suppressed_log"]
            assert any(entry[1] == s.expect_action and s.expect_suppressed in entry[2] for entry in log), s.name
        near = [c for c in changes if c["customer_id"] == s.near_miss_customer]
        assert not [c for c in near if (c["dimension"], c["to"]) == (want.dimension, want.to)], (
            f"{s.name}: the near-miss customer got {want.to}"
        )
