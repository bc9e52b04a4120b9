"""The Faust engine's intake: a delivery stepped by hand and finished as a task, acks of a whole batch, and
the handover's order and acks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest

from streams.live.faust_app import Handover
from streams.live.faust_intake import COPIED_FROM_THIS_FAUST, _finish, ack_all

BOUND_S = 5.0  # every wait in these tests ends by then


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, BOUND_S))


def test_the_fetch_loop_copy_runs_with_the_installed_faust():
    # Fails when faust is upgraded past 0.15: compare faust's `Consumer._drain_messages` with the copy in
    # streams/live/faust_intake.py, then widen COPIED_FROM_THIS_FAUST (until then faust's own loop runs).
    assert COPIED_FROM_THIS_FAUST, f"faust {faust.__version__}: the engine runs faust's own fetch loop"


def test_a_delivery_that_finishes_at_its_first_step_needs_no_task():
    async def delivery() -> str:
        return "delivered"

    coro = delivery()
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    assert done.value.value == "delivered"


def test_a_delivery_stepped_once_finishes_in_a_task_with_its_own_result():
    async def main() -> tuple[list[str], str]:
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        seen: list[str] = []

        async def delivery() -> str:
            seen.append("started")
            got = await gate
            seen.append(got)
            await asyncio.sleep(0)  # a second wait, after the hand-over to the task
            return f"done after {got}"

        coro = delivery()
        waiting = coro.send(None)  # as the fetch loop does: the first step, here and now
        assert seen == ["started"]
        task = asyncio.ensure_future(_finish(coro, waiting))
        await asyncio.sleep(0)
        assert not task.done()
        gate.set_result("room in the buffer")
        return seen, await task

    seen, result = run(main())
    assert seen == ["started", "room in the buffer"]
    assert result == "done after room in the buffer"


def test_cancelling_the_task_cancels_the_delivery_where_it_waits():
    async def main() -> list[str]:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen: list[str] = []

        async def delivery() -> None:
            try:
                await gate
                seen.append("delivered")
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        coro = delivery()
        task = asyncio.ensure_future(_finish(coro, coro.send(None)))
        await asyncio.sleep(0)
        task.cancel()  # as `wait_first` does when the flow is suspended (a rebalance)
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert run(main()) == ["cancelled"]


def test_an_error_the_delivery_waits_on_reaches_the_delivery():
    async def main() -> str:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def delivery() -> str:
            try:
                await gate
            except ValueError as exc:
                return f"handled {exc}"
            return "not reached"

        coro = delivery()
        task = asyncio.ensure_future(_finish(coro, coro.send(None)))
        await asyncio.sleep(0)
        gate.set_exception(ValueError("bad value"))
        return await task

    assert run(main()) == "handled bad value"


@dataclass
class _Message:
    tp: tuple[str, int]
    offset: int


@dataclass
class _Event:
    message: _Message
    last: bool  # whether this stream is the last to ack the message
    acked: int = 0

    def ack(self) -> bool:
        self.acked += 1
        return self.last


@dataclass
class _Stream:
    """What `ack_all` uses of a faust stream: its two sensor hooks."""

    events_out: list[int] = field(default_factory=list)
    messages_out: list[int] = field(default_factory=list)

    def _on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        assert stream is self
        self.events_out.append(offset)

    def _on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        self.messages_out.append(offset)


def test_ack_all_acks_every_event_and_reports_the_messages_whose_last_ack_it_was():
    stream = _Stream()
    events = [_Event(_Message(("in", 0), offset), last=offset != 1) for offset in range(3)]
    ack_all(stream, events)
    assert [e.acked for e in events] == [1, 1, 1]
    assert stream.events_out == [0, 1, 2]
    assert stream.messages_out == [0, 2]  # offset 1 is still held by another stream


class _Collector:
    def __init__(self) -> None:
        self.batches_after = 0

    def after_batch(self) -> None:
        self.batches_after += 1


class _Worker:
    """Records each applied batch; an apply waits for `release` (set by the test)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.collector = _Collector()

    async def apply(self, events: list[_Event]) -> None:
        await self.release.wait()
        self.batches.append([e.message.offset for e in events])


def _events(first: int, n: int) -> list[_Event]:
    return [_Event(_Message(("in", 0), offset), last=True) for offset in range(first, first + n)]


def test_the_handover_applies_in_order_and_acks_only_after_the_apply():
    async def main() -> tuple[_Worker, list[_Event]]:
        worker, stream = _Worker(), _Stream()
        handover = Handover(limit=4, stream=stream)
        applier = asyncio.create_task(handover.apply_all(worker))  # type: ignore[arg-type]
        events = _events(0, 6)
        await handover.put(events[:4], applier)
        await handover.put(events[4:], applier)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(e.acked for e in events)  # the apply has not landed
        worker.release.set()
        while len(worker.batches) < 2:
            if applier.done():
                applier.result()  # its error, rather than a wait until the bound
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        applier.cancel()
        await asyncio.gather(applier, return_exceptions=True)
        return worker, events

    worker, events = run(main())
    assert worker.batches == [[0, 1, 2, 3], [4, 5]]
    assert all(e.acked == 1 for e in events)
    assert worker.collector.batches_after == 2  # the collector is told after each batch


def test_an_abandoned_handover_stops_applying_and_acks_every_event_it_held_or_is_handed_once():
    """A stop whose batch in flight cannot land: faust waits for every taken event's ack, so the held ones
    are acknowledged unapplied (the next worker reads them again from Redis's marks), each exactly once."""

    async def main() -> tuple[_Worker, list[_Event], asyncio.Task[None]]:
        worker, stream = _Worker(), _Stream()
        handover = Handover(limit=4, stream=stream)
        applier = asyncio.create_task(handover.apply_all(worker))  # type: ignore[arg-type]
        events = _events(0, 10)
        await handover.put(events[:4], applier)
        await handover.put(events[4:7], applier)
        for _ in range(20):  # the first four are being applied (the apply waits), three wait
            await asyncio.sleep(0)
        assert handover.busy() and not any(e.acked for e in events)
        assert handover.abandon(applier) == 7
        await handover.put(events[7:], applier)  # handed over after: acknowledged at once
        await asyncio.gather(applier, return_exceptions=True)
        worker.release.set()
        await asyncio.sleep(0)
        return worker, events, applier

    worker, events, applier = run(main())
    assert applier.cancelled() and worker.batches == []  # nothing was applied
    assert [e.acked for e in events] == [1] * 10
    assert not Handover(limit=4, stream=_Stream()).busy()
