"""Instants for tests, written independently of the engine's own formatting (`streams.core.engine.iso`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def iso_z(t: float) -> str:
    """Epoch seconds as the outputs spell them: ISO-8601 UTC with a Z, microseconds only when needed."""
    moment = datetime.fromtimestamp(t, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z"


@dataclass(frozen=True)
class Timeline:
    """Days counted from a first instant `t0`."""

    t0: datetime

    def at(self, day: float) -> datetime:
        return self.t0 + timedelta(days=day)

    def ts(self, day: float) -> float:
        return self.at(day).timestamp()

    def iso_z(self, day: float) -> str:
        return iso_z(self.ts(day))
