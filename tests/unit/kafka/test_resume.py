"""Where a partition resumes, from Redis's mark and Kafka's earliest offset; the lost-offsets dead letter."""

from __future__ import annotations

import pytest

from schemas import DeadLetter
from streams.kafka.resume import LOST_OFFSETS, ResumePoint, lost_offsets_letter, resume_point


@pytest.mark.parametrize(
    ("applied", "beginning", "offset", "lost"),
    [
        (None, 0, 0, None),  # nothing applied: from the earliest offset
        (None, 40, 40, None),  # nothing applied, retention ran before: no range can be told
        (9, 0, 10, None),  # the usual case: the mark + 1
        (9, 10, 10, None),  # retention stopped exactly at the mark
        (9, 11, 11, (10, 10)),  # one offset deleted before it was applied
        (9, 500, 500, (10, 499)),
        (0, 0, 1, None),
    ],
)
def test_a_partition_resumes_after_its_mark_or_at_the_earliest_offset_kafka_holds(applied, beginning, offset, lost):
    point = resume_point(2, applied, beginning)
    assert point == ResumePoint(2, applied, offset, lost)
    assert point.lost_count == (0 if lost is None else lost[1] - lost[0] + 1)


def test_a_lost_range_makes_a_valid_dead_letter_naming_the_partition_and_the_range():
    letter = lost_offsets_letter("journey.touchpoints", resume_point(3, 9, 25))
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("journey.touchpoints", 3, 10)
    assert letter.raw_key_b64 is None and letter.raw_value_b64 is None
    assert letter.error.startswith(f"{LOST_OFFSETS}: offsets 10-24 of partition 3 (15 offsets)")
    assert "went on from offset 25" in letter.error


def test_no_letter_for_a_partition_that_lost_nothing():
    with pytest.raises(ValueError, match="lost no offsets"):
        lost_offsets_letter("journey.touchpoints", resume_point(3, 9, 5))
