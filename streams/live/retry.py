"""Wait-and-retry for Redis and Kafka outages: the worker pauses, it never skips events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Failures that pass when the service comes back. Not among them: `KafkaSetupError` (TLS or SASL
#: refused, streams/kafka/security.py), which only a change of settings fixes, so it ends the wait.
TRANSIENT = (ConnectionError, TimeoutError, BusyLoadingError, KafkaError, OSError, asyncio.TimeoutError)


async def retrying(op: Callable[[], Awaitable[T]], what: str, max_backoff: float) -> T:
    """Run `op` until it succeeds, backing off from 0.1 s up to `max_backoff` between tries."""
    delay = 0.1
    attempt = 0
    while True:
        try:
            return await op()
        except TRANSIENT as exc:
            attempt += 1
            log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, attempt, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
