"""Reading a replay's input: JSON Lines of touchpoint events, or any export through a mapping file.

A line that is not a valid event becomes an error record (with its line number) instead of
stopping the read, so one bad line in a million does not cost the other 999,999.
The file is read a line at a time: memory does not grow with its size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas import TouchpointEvent
from streams.core.intake import describe
from streams.imports.records import SourceRecord

#: How often (in lines) `bytes_read` is brought up to date: often enough for a progress bar.
_PROGRESS_EVERY = 4096


class RecordSource:
    """The records of one file, with `bytes_read` for a progress bar (exact for JSON Lines).

    An iterator, like the generator it wraps; `size` is the file's size in bytes.
    """

    def __init__(self, path: str | os.PathLike, mapping: Any = None) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.bytes_read = 0
        if mapping is None:
            self._records = _jsonl(self)
        else:  # resolved now, so a bad mapping fails here rather than at the first record
            self._records = _mapped(self, _loaded_mapping(mapping))

    def __iter__(self) -> Iterator[SourceRecord]:
        return self._records

    def __next__(self) -> SourceRecord:
        return next(self._records)


def iter_records(path: str | os.PathLike, mapping: Any = None) -> RecordSource:
    """The file's records: JSON Lines of touchpoint events, or with `mapping` (a mapping file's
    path, a shipped mapping's name, or a loaded mapping) any export `streams.imports.mapping` reads."""
    return RecordSource(path, mapping)


def _jsonl(source: RecordSource) -> Iterator[SourceRecord]:
    name = source.path.name
    validate = TouchpointEvent.model_validate_json
    done = 0
    with source.path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            done += len(line)
            if not number % _PROGRESS_EVERY:
                source.bytes_read = done
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            if line.isspace() or not line:
                continue
            try:
                event = validate(line)
            except ValidationError as exc:
                yield SourceRecord(name, number, error=describe(exc), raw=_text(line))
                continue
            yield SourceRecord(name, number, event)
    source.bytes_read = done


def _text(line: bytes) -> str:
    return line.rstrip(b"\r\n").decode("utf-8", errors="replace")


def _mapped(source: RecordSource, mapping: Any) -> Iterator[SourceRecord]:
    """Delegates to the mapping importer, reading its byte count for `bytes_read`."""
    from streams.imports.mapping import ImportCounts, iter_mapped

    counts = ImportCounts()
    for record in iter_mapped(source.path, mapping, counts):
        source.bytes_read = min(counts.bytes_read, source.size)
        yield record
    source.bytes_read = source.size


def _loaded_mapping(mapping: Any) -> Any:
    """A mapping file's path or a shipped mapping's name → the loaded mapping (anything else as is)."""
    from streams.imports.mapping import load_mapping, resolve_mapping

    if isinstance(mapping, str):
        mapping = resolve_mapping(mapping)
    if isinstance(mapping, os.PathLike):
        return load_mapping(Path(mapping))
    return mapping
