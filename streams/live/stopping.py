"""Stopping inside the grace an orchestrator gives (30 s in docker-compose.yml and deploy/kubernetes), whatever
Kafka and Redis do: both engines' bounds, and the words they use (README, "Running it as a service")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

log = logging.getLogger("streams.live.stopping")

#: How long the batch in flight may go on waiting out a Kafka or Redis outage once the worker is told to stop.
BATCH_GRACE_S = 10.0
#: How long an offset commit, and each Kafka client's stop, may go unanswered: 10 + 5 + 5 + 5 s < 30 s.
CLIENT_TIMEOUT_S = 5.0
#: Logged when an offset commit fails or goes unanswered; the argument says why.
COMMIT_FAILED = "offset commit failed (only the lag Kafka shows for the group is behind): %s"
#: Logged when the batch in flight is given up (`BATCH_GRACE_S` passed); the argument is the grace.
BATCH_GIVEN_UP = (
    "stopping without the batch in flight: it did not land within %gs (Kafka or Redis unreachable). Redis holds "
    "what was applied and its outbox what was not published: the next worker goes on from there"
)


async def stop_within(stop: Awaitable[object], what: str, timeout: float = CLIENT_TIMEOUT_S) -> None:
    """Await a Kafka client's stop (`what` names it) for at most `timeout`, then go on, saying so.

    With the broker gone, aiokafka's consumer stop raises the cancellation of the fetches it has just
    cancelled: that cancellation is the client's own, and is logged, unless this task is being cancelled."""
    try:
        await asyncio.wait_for(stop, timeout)
    except TimeoutError:
        log.warning("stopping %s: Kafka did not answer within %gs; going on", what, timeout)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("stopping %s: cancelled its requests to a Kafka that does not answer; going on", what)
