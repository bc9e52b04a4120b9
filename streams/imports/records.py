"""One record read from a replay source: a touchpoint event, or the reason it could not be one."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import TouchpointEvent


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """Line `line` (1-based; the header of a CSV is line 1) of file `source`: an event, or an error."""

    source: str
    line: int
    event: TouchpointEvent | None = None
    error: str | None = None
    raw: str = ""
