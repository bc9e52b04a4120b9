"""`journey demo`: the whole product on the embedded local stack, in one command.

Starts Tansu and redis-server, creates the topics, starts a worker process, feeds the
bundled sample journeys (plus a few malformed messages), prints each type change and
nurture action as it arrives, then a summary. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.kafka import clients
from streams.kafka.topics import ensure_topics
from streams.local import sample
from streams.local.stack import LocalStack
from streams.settings import Settings
from streams.store import JourneyStore
from streams.store import clients as redis_clients
from streams.text import shown

DEMO_ENV = {
    "JOURNEY_CLOCK": "event",
    # The sample journeys are synthetic and dated 2026: accepted whatever this machine's clock says
    # (the worker refuses events more than this ahead of its wall clock).
    "JOURNEY_MAX_EVENT_AHEAD_S": str(10 * 365 * 86_400),
    "JOURNEY_PARTITIONS": "4",
    "JOURNEY_SESSION_TIMEOUT_S": "6",
    "JOURNEY_HEARTBEAT_INTERVAL_S": "1",
    "JOURNEY_SWEEP_INTERVAL_S": "0.5",
    # Several local workers (the tests', the benchmark's) share one machine: no fixed HTTP port by default.
    "JOURNEY_HTTP_PORT": "0",
}


#: The local broker speaks plaintext: Kafka security settings of the caller's environment must not reach it.
LOCAL_KAFKA_SECURITY = {
    "JOURNEY_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    **dict.fromkeys(
        (
            "JOURNEY_KAFKA_SASL_MECHANISM",
            "JOURNEY_KAFKA_SASL_USERNAME",
            "JOURNEY_KAFKA_SASL_PASSWORD",
            "JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE",
            "JOURNEY_KAFKA_SSL_CAFILE",
            "JOURNEY_KAFKA_SSL_CERTFILE",
            "JOURNEY_KAFKA_SSL_KEYFILE",
            "JOURNEY_KAFKA_SSL_KEY_PASSWORD",
        ),
        "",  # empty: unset
    ),
}


def local_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    """The JOURNEY_* settings that point a worker at the local stack, quick to join its group."""
    return {
        **DEMO_ENV,
        **LOCAL_KAFKA_SECURITY,
        "JOURNEY_KAFKA_BOOTSTRAP": stack.bootstrap,
        "JOURNEY_REDIS_URL": stack.redis_url,
        **extra,
    }


def start_worker(
    env: dict[str, str], log_path: Path, engine: str = "aiokafka", command: list[str] | None = None
) -> subprocess.Popen:
    """A worker process (`python -m streams worker --engine ENGINE`, or `command`) with these settings,
    logging to a file."""
    log = open(log_path, "ab")  # noqa: SIM115 - the worker process writes to it for its whole life
    return subprocess.Popen(
        command or [sys.executable, "-m", "streams", "worker", "--loglevel", "info", "--engine", engine],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def stop_worker(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def caught_up(settings: Settings, client: redis_clients.AsyncClient, ends: dict[int, int]) -> bool:
    """True when the worker has applied every input offset below `ends` and published its whole outbox.

    `ends` comes from the produce acknowledgements, not from ListOffsets: Tansu answers that
    with the base offset of a partition's last record batch + 1, which falls short.
    """
    store = JourneyStore.for_settings(client, settings)
    marks, backlog = await store.marks_and_backlog(list(range(settings.partitions)))
    for partition, end in ends.items():
        applied = marks[partition].offset
        if applied is None or applied < end - 1:
            return False
    return not any(backlog.values())


class Watcher:
    """Prints output messages as they arrive and keeps the counts for the summary."""

    def __init__(self, console: Console, settings: Settings, quiet: bool):
        self.console, self.settings, self.quiet = console, settings, quiet
        self.lifecycle: dict[str, str] = {}
        self.traits: dict[str, set[str]] = {}
        self.trait_moves: Counter = Counter()
        self.waiting: dict[str, list[dict]] = {}  # actions whose change has not been read yet
        self.transitions: Counter = Counter()
        self.actions: Counter = Counter()
        self.dead: Counter = Counter()
        self.seen_ids: set[str] = set()
        self.last_output = time.monotonic()

    def show(self, topic: str, value: bytes | None) -> None:
        if value is None:  # a tombstone: a customer forgotten on request (`journey forget`) while it runs
            return
        msg = json.loads(value)
        self.last_output = time.monotonic()
        s = self.settings
        if topic == s.topic_type_changes:
            if msg["change_id"] in self.seen_ids:
                return
            self.seen_ids.add(msg["change_id"])
            customer = msg["customer_id"]
            if msg["dimension"] == "lifecycle":
                self.lifecycle[customer] = msg["to"]
                self.transitions[(msg["from"] or "-", msg["to"])] += 1
                what = f"{msg['from'] or '—'} → {msg['to']}"
            elif msg["to"]:
                self.traits.setdefault(customer, set()).add(msg["to"])
                self.trait_moves[("added", msg["to"])] += 1
                what = f"+ {msg['to']}"
            else:
                self.traits.setdefault(customer, set()).discard(msg["from"])
                self.trait_moves[("cleared", msg["from"])] += 1
                what = f"− {msg['from']}"
            if not self.quiet:
                ev = ", ".join(f"{k}={v}" for k, v in msg["reason"]["evidence"].items() if v is not None)
                self.console.print(
                    f"[dim]{shown(msg['at'][:10])}[/] {shown(customer)}  [bold]{shown(what)}[/]"
                    f"  [dim]{shown(msg['reason']['rule'])}: {shown(ev)} (cause {shown(msg['caused_by'])})[/]"
                )
            for action in self.waiting.pop(msg["change_id"], []):
                self._print_action(action)
        elif topic == s.topic_nurture_actions:
            if msg["action_id"] in self.seen_ids:
                return
            self.seen_ids.add(msg["action_id"])
            self.actions[msg["action"]] += 1
            if msg["triggered_by"] in self.seen_ids:
                self._print_action(msg)
            else:  # the topics are read independently: show it under its change once that arrives
                self.waiting.setdefault(msg["triggered_by"], []).append(msg)
        elif topic == s.topic_dead_letter:
            self.dead[msg["error"][:70]] += 1
            self.console.print(
                f"[red]✗ dead-letter[/] partition {msg['source_partition']} offset {msg['source_offset']}: "
                f"{shown(msg['error'][:120])}"
            )

    def _print_action(self, msg: dict) -> None:
        if not self.quiet:
            self.console.print(
                f"    [green]↳ {shown(msg['customer_id'])}: {shown(msg['action'])}[/] via {shown(msg['channel'])} "
                f"({shown(msg['priority'])})"
            )

    def summary(self, produced: int, elapsed: float) -> None:
        table = Table(title="Customers per lifecycle type")
        table.add_column("type")
        table.add_column("customers", justify="right")
        for kind, n in Counter(self.lifecycle.values()).most_common():
            table.add_row(shown(kind), str(n))
        self.console.print(table)
        traits = Table(title="Customers per trait (now)")
        traits.add_column("trait")
        traits.add_column("customers", justify="right")
        traits.add_column("added / cleared", justify="right")
        held = Counter(t for ts in self.traits.values() for t in ts)
        for trait in sorted({t for _, t in self.trait_moves}, key=lambda t: -held[t]):
            traits.add_row(
                shown(trait),
                str(held[trait]),
                f"{self.trait_moves[('added', trait)]} / {self.trait_moves[('cleared', trait)]}",
            )
        self.console.print(traits)
        moves = Table(title="Lifecycle changes")
        moves.add_column("from → to")
        moves.add_column("changes", justify="right")
        for (a, b), n in sorted(self.transitions.items(), key=lambda kv: -kv[1]):
            moves.add_row(shown(f"{a} → {b}"), str(n))
        self.console.print(moves)
        acts = Table(title="Nurture actions")
        acts.add_column("action")
        acts.add_column("sent", justify="right")
        for name, n in self.actions.most_common():
            acts.add_row(shown(name), str(n))
        self.console.print(acts)
        dead = Table(title=f"Dead-lettered events: {sum(self.dead.values())}")
        dead.add_column("error")
        dead.add_column("events", justify="right")
        for err, n in self.dead.most_common():
            dead.add_row(shown(err), str(n))
        self.console.print(dead)
        self.console.print(
            f"{produced} events in, {sum(self.transitions.values()) + sum(self.trait_moves.values())} changes and "
            f"{sum(self.actions.values())} actions out, in {elapsed:.1f}s."
        )


class WorkerDied(RuntimeError):
    pass


async def feed_and_watch(
    console: Console, settings: Settings, events: list[dict], quiet: bool, worker: subprocess.Popen
) -> None:
    topics = [settings.topic_type_changes, settings.topic_nurture_actions, settings.topic_dead_letter]
    consumer = clients.consumer(settings, *topics, auto_offset_reset="earliest")
    producer = clients.producer(settings, linger_ms=5)
    client = redis_clients.async_client(settings)
    watcher = Watcher(console, settings, quiet)
    await consumer.start()
    await producer.start()
    started = time.monotonic()
    try:
        pending = [
            await producer.send(
                settings.topic_touchpoints, json.dumps(event).encode(), key=event["customer_id"].encode()
            )
            for event in events
        ]
        pending += [
            await producer.send(settings.topic_touchpoints, value, key=key) for key, value in sample.bad_messages()
        ]
        ends: dict[int, int] = {}
        for ack in await asyncio.gather(*pending):
            ends[ack.partition] = max(ends.get(ack.partition, 0), ack.offset + 1)
        produced = len(events) + len(sample.bad_messages())
        console.print(f"[bold]fed {produced} events[/] ({len(sample.bad_messages())} of them malformed on purpose)")
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                for record in records:
                    watcher.show(tp.topic, record.value)
            if worker.poll() is not None:
                raise WorkerDied(f"the worker exited with code {worker.returncode}")
            quiet_for = time.monotonic() - watcher.last_output
            if not batch and quiet_for > 2.0 and await caught_up(settings, client, ends):
                break
        watcher.summary(produced, time.monotonic() - started)
    finally:
        await consumer.stop()
        await producer.stop()
        await client.aclose()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_demo(customers: int | None = None, quiet: bool = False) -> int:
    console = Console()
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` cleans up like Ctrl-C does
    stack = LocalStack()
    worker = None
    try:
        with console.status("starting the local Kafka-protocol broker (Tansu) and redis-server…"):
            stack.start()
        env = local_env(stack)
        settings = Settings.model_validate({k.removeprefix("JOURNEY_").lower(): v for k, v in env.items()})
        asyncio.run(ensure_topics(settings))
        console.print(f"broker {stack.bootstrap}, Redis {stack.redis_url}, logs in {stack.workdir}")
        worker = start_worker(env, stack.workdir / "worker.log")
        if customers:
            events = list(sample.generate(customers))
        else:
            events = [json.loads(line) for line in sample.SAMPLE_FILE.read_text().splitlines()]
        console.print(
            f"worker started (pid {worker.pid}); feeding {len(events)} events of "
            f"{len({e['customer_id'] for e in events})} customers"
        )
        asyncio.run(feed_and_watch(console, settings, events, quiet, worker))
        return 0
    except WorkerDied as exc:
        log = (stack.workdir / "worker.log").read_text().splitlines()[-15:]
        console.print(f"[red]{exc}[/]; the end of its log ({stack.workdir / 'worker.log'}):")
        console.print("\n".join(log), markup=False)
        return 1
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: stopping the worker, the broker and Redis[/]")
        return 130
    finally:
        if worker is not None:
            stop_worker(worker)
        stack.stop()
