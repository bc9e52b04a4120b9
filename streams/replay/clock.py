"""`journey advance-clock`: end a replay into the live worker by moving every input partition's event clock."""

from __future__ import annotations

from streams.kafka.topics import input_partitions
from streams.settings import Settings
from streams.store import JourneyStore, clients


async def advance_event_clock(
    settings: Settings, until: float, partitions: list[int] | None = None
) -> dict[int, float]:
    """`journey advance-clock`: move every input partition's event clock to `until` (epoch seconds).

    For the end of a replay with `JOURNEY_CLOCK=event`: the live worker keeps one clock per partition
    (the latest event time applied there), the offline replay one for the whole file; advancing every
    partition to the same instant makes both fire the same inactivity checks. Run it once the input
    has been applied: an event still unread, older than `until`, would arrive after the checks fired.
    The partitions are the input topic's real ones (from the broker), or `settings.partitions` when
    the topic cannot be described.
    """
    if partitions is None:
        partitions = await input_partitions(settings)
    client = clients.async_client(settings)
    try:
        store = JourneyStore.for_settings(client, settings)
        return await store.advance_clock(sorted(partitions), until)
    finally:
        await client.aclose()
