"""One offline replay: records in, `changes.jsonl` / `actions.jsonl` / `dead-letters.jsonl` / `holdouts.jsonl` / `erasures.jsonl`
and a report out.

Input and output are streamed a chunk at a time, so memory grows with the number of
customers (their states), not with the number of events. States live in memory, or with
`redis_url` in a bounded write-back cache over Redis (`RedisStates`).

Event times are checked as the worker checks them (`streams/core/timeguard.py`), against the
instant `now` the replay is given (by default `until`), never against the machine's clock: an
event dated too far ahead of it, or before the floor, is dead-lettered, so it cannot move the
replay's clock past every due time, and the same file gives the same outputs whenever it runs.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path

from schemas import Dimension
from streams.core.engine import iso
from streams.core.model import Model
from streams.core.playbook.playbook import suppression_rule
from streams.core.timeguard import TimeGuard
from streams.imports.records import SourceRecord
from streams.replay.engine import Emitted, OfflineReplay
from streams.replay.redis_states import RedisStates
from streams.replay.report import ReplayReport, reason_of
from streams.store.keys import REPLAY_STATES

#: Records read, applied and written per step. In memory a small chunk keeps the records it holds
#: in the CPU cache (faster than large chunks: benchmarks/bench_replay.py); with Redis a chunk is one batch load.
CHUNK = 128
REDIS_CHUNK = 2048
#: `progress` is called about this often (in records).
PROGRESS_EVERY = 4096
OUTPUT_FILES = ("changes.jsonl", "actions.jsonl", "dead-letters.jsonl", "holdouts.jsonl", "erasures.jsonl")


class ReplayError(RuntimeError):
    """The core raised on a record: a bug to see, not bad input to dead-letter."""


class _Outputs:
    """The output files, written a chunk at a time (nothing is kept once written)."""

    def __init__(self, out_dir: Path | None) -> None:
        self.files = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.files = [open(out_dir / name, "wb") for name in OUTPUT_FILES]  # noqa: SIM115 - closed by close()
        self.pending: list[list[bytes]] = [[] for _ in OUTPUT_FILES]

    def write(self) -> None:
        for lines, file in zip(self.pending, self.files or (), strict=False):  # no files: nothing written
            if lines:
                lines.append(b"")
                file.write(b"\n".join(lines))
        for lines in self.pending:
            lines.clear()

    def close(self) -> None:
        self.write()
        for file in self.files or ():
            file.close()


def run_replay(
    records: Iterable[SourceRecord],
    model: Model,
    until: datetime | float | None = None,
    out_dir: str | Path | None = None,
    redis_url: str | None = None,
    progress: Callable[[int], None] | None = None,
    redis_prefix: str = REPLAY_STATES,
    redis_cache: int = 50_000,
    now: datetime | float | None = None,
    guard: TimeGuard | None = None,
    redis_cluster: bool = False,
) -> ReplayReport:
    """Replay `records` through the core with `model` (rules, playbook: `Settings().load_model()`)
    in their order; `until` then moves the clock on.

    `progress(records_done)` is called every few thousand records and at the end. With
    `out_dir` None nothing is written (the report is still complete). With `redis_url`, at most
    about `redis_cache` states are held in memory; the others wait in Redis under `redis_prefix`
    (`redis_cluster`: the URL names a node of a Redis Cluster).
    `guard` (`Settings().time_guard()`; its defaults when None) refuses event times before its floor
    or later than `now` (default: `until`; neither: only its fixed bounds) plus its tolerance.
    """
    started = time.perf_counter()
    until_ts = until.timestamp() if isinstance(until, datetime) else until
    now_ts = now.timestamp() if isinstance(now, datetime) else now
    bounds = (guard or TimeGuard()), (until_ts if now_ts is None else now_ts)
    store = (
        RedisStates.from_url(redis_url, cluster=redis_cluster, prefix=redis_prefix, capacity=redis_cache)
        if redis_url
        else None
    )
    replay = OfflineReplay(model, store)
    report = ReplayReport(
        out_dir=None if out_dir is None else Path(out_dir), until=None if until_ts is None else iso(until_ts)
    )
    out = _Outputs(report.out_dir)
    try:
        next_progress = PROGRESS_EVERY
        # With Redis, a chunk's customers must fit in the cache with room to spare (one load per chunk).
        size = CHUNK if store is None else max(64, min(REDIS_CHUNK, store.capacity // 4))
        for chunk in _chunks(records, size):
            chunk = _guarded(chunk, *bounds)
            if store is not None:
                latest = max((r.event.occurred_ts for r in chunk if r.event is not None), default=None)
                due = replay.due_by(latest) if latest is not None else []
                store.prepare(due + [r.event.customer_id for r in chunk if r.event is not None])
            _apply_chunk(replay, chunk, out, report)
            out.write()
            # The states only grow: moved out of the collector's sight, so that its collections walk
            # the chunk's new objects rather than every customer's state (unfrozen at the end).
            gc.freeze()
            if progress is not None and report.records >= next_progress:
                progress(report.records)
                next_progress = report.records + PROGRESS_EVERY
        if until_ts is not None:
            if store is not None:
                store.prepare(replay.due_by(until_ts))
            _tally(replay.advance_to(until_ts), out, report)
        _final_counts(replay, report, store)
        if progress is not None:
            progress(report.records)
    finally:
        gc.unfreeze()
        out.close()
        if store is not None:
            store.client.close()
    report.elapsed_s = time.perf_counter() - started
    if report.out_dir is not None:
        _write_summary(report, report.out_dir)
    return report


def _guarded(chunk: list[SourceRecord], guard: TimeGuard, now: float | None) -> list[SourceRecord]:
    """The chunk, with each event dated outside the accepted range turned into an error record."""
    earliest, latest = guard.bounds(now)
    if all(r.event is None or earliest <= r.event.occurred_ts <= latest for r in chunk):
        return chunk
    return [
        r
        if r.event is None or earliest <= r.event.occurred_ts <= latest
        else SourceRecord(r.source, r.line, error=guard.refusal(r.event.occurred_ts, now), raw=r.raw)
        for r in chunk
    ]


def _apply_chunk(replay: OfflineReplay, chunk: list[SourceRecord], out: _Outputs, report: ReplayReport) -> None:
    dead = out.pending[2]
    apply = replay.apply
    for record in chunk:
        event = record.event
        if event is None:
            error = record.error or "no event"
            dead.append(json.dumps({"line": record.line, "error": error}, ensure_ascii=False).encode())
            report.dead_lettered[reason_of(error)] += 1
            continue
        try:
            emitted = apply(event)
        except Exception as exc:
            raise ReplayError(f"{record.source}:{record.line}: the core raised {exc!r}") from exc
        if emitted.changes or emitted.actions or emitted.held_out:
            _tally(emitted, out, report)
        if emitted.refused is not None:  # the core would not apply it: dead-lettered, as the worker does
            dead.append(json.dumps({"line": record.line, "error": emitted.refused}, ensure_ascii=False).encode())
            report.dead_lettered[reason_of(emitted.refused)] += 1
        if emitted.erased is not None:  # the audit record, as the worker puts it on the erasures topic
            erased = emitted.erased
            out.pending[4].append(erased.__pydantic_serializer__.to_json(erased, by_alias=True))
    report.records += len(chunk)


def _tally(emitted: Emitted, out: _Outputs, report: ReplayReport) -> None:
    """Serialise what a step emitted (in emission order) and count it for the report."""
    changes, actions = out.pending[0], out.pending[1]
    for change in emitted.changes:
        changes.append(change.__pydantic_serializer__.to_json(change, by_alias=True))
        if change.dimension is Dimension.LIFECYCLE:
            report.transitions[(change.from_, change.to)] += 1
        elif change.to is not None:
            report.traits_entered[change.to] += 1
        else:
            report.traits_cleared[change.from_] += 1
    for action in emitted.actions:
        actions.append(action.__pydantic_serializer__.to_json(action, by_alias=True))
        report.actions_sent[action.action] += 1
    for action in emitted.held_out:
        out.pending[3].append(action.__pydantic_serializer__.to_json(action, by_alias=True))


def _final_counts(replay: OfflineReplay, report: ReplayReport, store: RedisStates | None) -> None:
    counts = replay.counts
    report.events, report.duplicates = counts.events, counts.duplicates
    report.changes, report.actions = counts.changes, counts.actions
    report.erasures = counts.erasures
    report.actions_suppressed.update(counts.suppressed)
    report.actions_deferred.update(counts.deferred)
    report.actions_held_out.update(counts.held_out)
    for (action, reason), n in counts.suppressed_why.items():
        report.suppressed_why[(action, suppression_rule(reason))] += n
    for state in replay.states.values() if store is None else store.iter_states():
        report.customers += 1
        if state.lifecycle is not None:
            report.lifecycle[state.lifecycle] += 1
        report.traits.update(state.traits.keys())
    if store is not None:
        report.store = {"redis_round_trips": store.round_trips, "states_evicted": store.evicted}


def _write_summary(report: ReplayReport, out_dir: Path) -> None:
    from streams.replay.chart import transitions_svg

    (out_dir / "summary.json").write_text(json.dumps(report.summary(), indent=2, ensure_ascii=False) + "\n")
    (out_dir / "transitions.svg").write_text(transitions_svg(report.transitions))


def _chunks(records: Iterable[SourceRecord], size: int) -> Iterator[list[SourceRecord]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk
