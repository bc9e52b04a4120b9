"""What the HTTP routes need of a running engine, and nothing more.

The aiokafka worker implements it (`streams/live/observed.py`); an engine built on another
framework implements the same few members to serve the same routes.
"""

from __future__ import annotations

from typing import Any, Protocol

from streams.http.metrics import Telemetry


class Unavailable(Exception):
    """The engine cannot answer (Redis unreachable, say): the route answers `status` with this message."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class Engine(Protocol):
    @property
    def telemetry(self) -> Telemetry:
        """The engine's metrics: what `GET /metrics` exposes."""
        ...

    def liveness(self) -> str | None:
        """None while the engine makes progress; otherwise why it is stalled (`GET /healthz` answers 503)."""
        ...

    async def readiness(self) -> str | None:
        """None once connected to Kafka and Redis and in the consumer group; otherwise what is missing."""
        ...

    async def refresh(self) -> None:
        """Bring the gauges read at scrape time up to date (consumer lag, due backlog): before each scrape."""
        ...

    async def profile(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's profile (`streams.profile.build_profile`), or None for an unknown customer.

        Raises `Unavailable` when the state store cannot be read.
        """
        ...
