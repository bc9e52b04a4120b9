"""Where an input partition resumes: the offset Redis says it applied + 1, never Kafka's committed offset.

Redis holds each partition's exact applied offset in the same atomic write as the states that
offset produced (`streams/store/lua/commit.lua`). Kafka's committed offset is written about once
a second, after the fact, and knows nothing of what Redis kept: when Redis loses its last
seconds (restored from a snapshot, a failover to a lagging replica, a host crash with
`appendfsync everysec`), the committed offset is ahead of the states, and resuming there would
skip what Redis lost. Resuming from Redis's mark applies it again instead, with the same ids
(every change and action id is derived from its inputs).

When Kafka no longer holds the offsets after the mark (retention deleted them before they were
applied), nothing can bring them back: the partition goes on from the earliest offset Kafka
has, and the worker reports the missing range (`lost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas import DeadLetter


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where one partition is read from next, and the offsets Kafka deleted before they were applied."""

    partition: int
    applied: int | None  # Redis's mark: the last applied offset (None: nothing applied yet)
    offset: int  # the next offset to read
    lost: tuple[int, int] | None = None  # first and last offset (inclusive) Kafka no longer holds

    @property
    def lost_count(self) -> int:
        return 0 if self.lost is None else self.lost[1] - self.lost[0] + 1


def resume_point(partition: int, applied: int | None, beginning: int) -> ResumePoint:
    """Resume after `applied` (Redis's mark), or at `beginning` (Kafka's earliest offset) when nothing
    was applied yet or when Kafka deleted what follows the mark.

    A partition without a mark starts from the earliest offset Kafka holds; what retention took
    before this deployment ever read the partition cannot be told from what it never had, so no
    range is reported for it.
    """
    if applied is None:
        return ResumePoint(partition, None, beginning)
    wanted = applied + 1
    if wanted >= beginning:
        return ResumePoint(partition, applied, wanted)
    return ResumePoint(partition, applied, beginning, lost=(wanted, beginning - 1))


#: How a dead letter for offsets Kafka deleted before they were applied begins its `error`.
LOST_OFFSETS = "offsets lost"


def lost_offsets_letter(topic: str, point: ResumePoint, received_at: datetime | None = None) -> DeadLetter:
    """The dead letter that names a range of input offsets nobody will ever apply.

    No message is left to carry, so the raw key and value are null; `source_offset` is the first
    offset of the range and `error` names the whole range, in words and in a fixed form.
    """
    if point.lost is None:
        raise ValueError(f"partition {point.partition} lost no offsets")
    first, last = point.lost
    error = (
        f"{LOST_OFFSETS}: offsets {first}-{last} of partition {point.partition} ({point.lost_count} offsets) "
        f"were deleted from {topic} (retention) before they were applied; the last applied offset is "
        f"{point.applied}, and the worker went on from offset {point.offset}, the earliest Kafka holds"
    )
    return DeadLetter(
        raw_key_b64=None,
        raw_value_b64=None,
        error=error,
        source_topic=topic,
        source_partition=point.partition,
        source_offset=first,
        received_at=received_at or datetime.now(UTC),
    )
