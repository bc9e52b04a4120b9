#!/usr/bin/env python
"""Throughput and latency of the whole journey pipeline on the embedded local stack.

    python benchmarks/bench_pipeline.py [--customers N] [--max-events N] [--partitions P]
                                        [--steady-rate R] [--steady-seconds S] [--engines aiokafka,faust]
    python benchmarks/bench_pipeline.py --table [--customers N] [--max-events N]   (deployments side by side)

One run starts a Tansu broker and a redis-server (`LocalStack`), creates the topics, and:

(a) bare loop: pre-produces a realistic mix of touchpoints (`sample.generate`, keyed by
    customer id, JSON values) into the input topic, then consumes it with a plain aiokafka
    consumer that parses each message and produces one message per input to a scratch
    topic. Rate = N / (first record received → last produce acknowledged). This is the
    ceiling the pipeline is compared with: Kafka in, JSON, Kafka out, no state.
(a') faust's ceiling (with the faust engine): an agent that only takes batches and acknowledges them
    (`benchmarks/faust_ceiling.py`, run with `faust -A`, the Faust engine's own faust settings), in a
    group of its own over the same events. Rate = N / (first batch → last batch taken), as it reports.
    It runs twice: with faust's own fetch loop and `Stream.ack` per event (faust as shipped), and with
    the Faust engine's intake (`streams/live/faust_intake.py`: the fetch loop without a task per message,
    no second-long sleep after a full buffer, one plain loop of acks per batch), so the engine is set
    against both.
(b) whole pipeline: one worker process on the same pre-produced events, once per engine of
    `--engines` (`journey worker --engine aiokafka|faust`), each with its own group, key prefix and
    output topics. Its progress is
    read from the partition marks in Redis (the applied offset of each partition, written
    atomically with each batch) and it is done when every partition is applied to its end
    offset and every outbox is empty (what `demo.caught_up` checks). Rate = N / (first
    batch applied → caught up), so the consumer-group join is excluded; the time from
    starting the worker is printed as well. The figures (events, changes, actions, Redis
    round trips) come from the worker's stats hash.
(c) latency at steady load (per engine): with the worker still running, produces first `page_view`s of
    brand-new customers at a fixed rate; each yields a `None → prospect` TypeChange whose
    `caused_by` is the event id. Latency = produce call → that change read back from the
    type-changes topic.

Throughout (b) and (c) the worker serves its HTTP endpoint and the benchmark scrapes /metrics
every `--scrape-every` seconds (15, Prometheus's usual interval; 0 turns the endpoint off), so
the figures are those of a worker with its metrics on.

It prints figures and never asserts on them. The worker and the stack are always stopped.

Two things about this local broker (Tansu) that the figures depend on:
- ListOffsets(latest) answers the base offset of a partition's last record batch + 1, so
  end offsets fall short whenever producers batch; the input's end offsets are therefore
  taken from the produce acknowledgements.
- A fetch that finds no new data is held for about half its max wait even when data arrives
  meanwhile. Faust's driver asks for 1500 ms (hard-coded), so each idle fetch could add up to
  ~750 ms to (c)'s latency; both engines' consumers ask for JOURNEY_BATCH_WITHIN_S (50 ms), the
  faust ceiling's for faust's 1500 ms (it measures a backlog, where fetches do not wait).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a plain script from a checkout

from streams.kafka import clients
from streams.kafka.topics import ensure_topics
from streams.local import sample
from streams.local.cluster import RedisCluster
from streams.local.demo import local_env, start_worker, stop_worker
from streams.local.stack import LocalStack
from streams.settings import Settings
from streams.store import JourneyStore, Keys
from streams.store import clients as redis_clients

SCRATCH_TOPIC = "bench.scratch"
CHUNK = 5_000  # produce futures gathered per chunk
console = Console()


class BenchError(RuntimeError):
    """A phase could not finish (time-out, dead worker); the message says why."""


# --------------------------------------------------------------------------- setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults keep a run under about four minutes on two cores."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=20_000, help="customers generated by sample.generate")
    p.add_argument("--max-events", type=int, default=200_000, help="cap on the pre-produced events (earliest first)")
    p.add_argument("--partitions", type=int, default=8, help="partitions of every topic (JOURNEY_PARTITIONS)")
    p.add_argument("--steady-rate", type=float, default=2_000.0, help="events/s produced in the latency phase")
    p.add_argument("--steady-seconds", type=float, default=15.0, help="length of the latency phase")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--engines",
        default="aiokafka,faust",
        help="worker engines measured in (b) and (c), comma-separated (faust also runs faust's ceiling, (a'))",
    )
    p.add_argument(
        "--stall-timeout", type=float, default=60.0, help="give up when the worker makes no progress for this long (s)"
    )
    p.add_argument(
        "--scrape-every",
        type=float,
        default=15.0,
        help="the worker serves its HTTP endpoint and /metrics is scraped this often during (b) and (c), "
        "as Prometheus would (s; 0: endpoint off)",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="instead of (a)-(c): one worker on one Redis, one worker on a three-master Redis Cluster and two "
        "workers sharing the partitions, on the same events, printed as one table",
    )
    return p.parse_args(argv)


async def scrape_metrics(port: int, every: float, counts: dict[str, int]) -> None:
    """GET /metrics every `every` seconds until cancelled, counting the scrapes that answered 200."""
    import urllib.request

    def once() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            response.read()
            return response.status == 200

    while True:
        await asyncio.sleep(every)
        try:
            counts["ok" if await asyncio.to_thread(once) else "failed"] += 1
        except OSError:
            counts["failed"] += 1


def free_port() -> int:
    """A loopback port nothing listens on now (for the worker's HTTP endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_settings(bootstrap: str) -> Settings:
    """The settings a benchmark client connects with: the environment's (security included), at this broker."""
    return Settings(kafka_bootstrap=bootstrap)


def settings_from_env(env: dict[str, str]) -> Settings:
    """The Settings a worker started with this JOURNEY_* environment would read."""
    return Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in env.items()})


def make_progress() -> Progress:
    """A rich progress display for one long phase."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )


def load_events(customers: int, max_events: int, seed: int) -> tuple[list[tuple[bytes, bytes]], str]:
    """(key, JSON value) pairs of the first `max_events` generated events, and the last event time."""
    messages: list[tuple[bytes, bytes]] = []
    last_time = sample.SAMPLE_START.isoformat().replace("+00:00", "Z")
    for event in sample.generate(customers, seed):
        if len(messages) >= max_events:
            break
        messages.append((event["customer_id"].encode(), json.dumps(event, separators=(",", ":")).encode()))
        last_time = event["occurred_at"]
    return messages, last_time


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create a topic (Tansu does not create topics on first use)."""
    admin = clients.admin(kafka_settings(bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The end offset of every partition of a topic."""
    consumer = clients.consumer(kafka_settings(bootstrap))
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def fast_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer that batches: it lingers and we never await one delivery at a time (acks like the worker's)."""
    return clients.producer(kafka_settings(bootstrap), linger_ms=10, max_batch_size=256 * 1024, acks="all")


async def send_all(producer: AIOKafkaProducer, topic: str, messages, progress: Progress, task) -> dict[int, int]:
    """Send (key, value) pairs, gathering the delivery futures a chunk at a time.

    Returns the end offset of each partition written to (last acknowledged offset + 1).
    """
    ends: dict[int, int] = {}

    async def settle(pending: list) -> None:
        for meta in await asyncio.gather(*pending):
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        progress.advance(task, len(pending))
        pending.clear()

    pending = []
    for key, value in messages:
        pending.append(await producer.send(topic, value, key=key))
        if len(pending) >= CHUNK:
            await settle(pending)
    await settle(pending)
    return ends


async def preproduce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> tuple[float, dict[int, int]]:
    """Produce every message into the input topic; returns the seconds it took and each partition's end offset.

    The end offsets come from the acknowledgements, not from ListOffsets: this Tansu answers
    ListOffsets(latest) with the base offset of the partition's last record batch + 1, short by
    the rest of that batch whenever the producer batches.
    """
    producer = fast_producer(bootstrap)
    await producer.start()
    try:
        with make_progress() as progress:
            task = progress.add_task("pre-producing the input", total=len(messages), note="")
            started = time.monotonic()
            ends = await send_all(producer, topic, messages, progress, task)
            return time.monotonic() - started, ends
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- (a) bare loop


@dataclass
class BareResult:
    events: int
    seconds: float  # first record → last produce acknowledged
    join_seconds: float  # consumer start → first record

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def bare_loop(bootstrap: str, topic: str, n: int, session_timeout_s: float) -> BareResult:
    """Consume the input topic in a fresh group, json.loads each value, produce one message each to a scratch topic."""
    consumer = clients.consumer(
        kafka_settings(bootstrap),
        topic,
        group_id="bench-bare-loop",
        auto_offset_reset="earliest",
        session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=1000,
    )
    producer = fast_producer(bootstrap)
    await producer.start()
    started = time.monotonic()
    await consumer.start()
    first = None
    consumed = 0
    pending = []
    try:
        with make_progress() as progress:
            task = progress.add_task("bare loop", total=n, note="")
            while consumed < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
                if batch and first is None:
                    first = time.monotonic()
                    progress.update(task, note=f"group joined in {first - started:.1f}s")
                if first is None and time.monotonic() - started > 60:
                    raise BenchError("the bare-loop consumer got no record within 60 s")
                for records in batch.values():
                    for record in records:
                        event = json.loads(record.value)
                        pending.append(
                            await producer.send(SCRATCH_TOPIC, record.value, key=event["customer_id"].encode())
                        )
                        consumed += 1
                if len(pending) >= CHUNK:
                    await asyncio.gather(*pending)
                    pending.clear()
                progress.update(task, completed=consumed)
            await asyncio.gather(*pending)
            done = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    return BareResult(consumed, done - first, first - started)


# --------------------------------------------------------------------------- (b) whole pipeline


@dataclass
class PipelineResult:
    events: int
    seconds: float  # first batch applied → caught up
    seconds_with_join: float  # worker started → caught up
    stats: dict[str, int]
    cpu: dict[str, float]  # CPU seconds each process used over `seconds`

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc); None when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float | None]:
    """CPU seconds so far of each named process."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    """CPU seconds each process used between two snapshots (processes that could not be read are left out)."""
    return {
        name: after[name] - before[name] for name in before if before[name] is not None and after.get(name) is not None
    }


async def read_stats(client: aioredis.Redis, keys: Keys) -> dict[str, int]:
    """The sum of every worker's stats hash (`streams/store/keys.py`)."""
    totals: dict[str, int] = {}
    # SCAN, not KEYS: on a cluster client scan_iter visits every master, KEYS only one.
    async for key in client.scan_iter(match=keys.stats_pattern):
        for field, value in (await client.hgetall(key)).items():
            name = field.decode()
            totals[name] = totals.get(name, 0) + int(value)
    return totals


def accounted(stats: dict[str, int]) -> int:
    """Input messages the worker has dealt with one way or another."""
    return sum(stats.get(k, 0) for k in ("events", "dead_lettered", "duplicates", "redelivered"))


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(could not read {path}: {exc})"


def check_alive(worker: subprocess.Popen, log_path: Path) -> None:
    """Raise with the worker's log tail if the worker process has exited."""
    if worker.poll() is not None:
        raise BenchError(
            f"the worker exited with code {worker.returncode}; the end of {log_path}:\n{log_tail(log_path)}"
        )


async def applied_and_backlog(store: JourneyStore, partitions: int) -> tuple[dict[int, int], int]:
    """Per partition the number of input messages applied (last applied offset + 1), and the total outbox backlog."""
    marks, backlog = await store.marks_and_backlog(list(range(partitions)))
    applied = {p: (-1 if m.offset is None else m.offset) + 1 for p, m in marks.items()}
    return applied, sum(backlog.values())


async def run_pipeline(
    settings: Settings,
    worker: subprocess.Popen,
    started: float,
    ends: dict[int, int],
    log_path: Path,
    stall_timeout: float,
    pids: dict[str, int],
) -> PipelineResult:
    """Watch the worker chew through the pre-produced input until it has caught up, and time it.

    Also takes the CPU time of each process in `pids` over the same span, to show where the time goes.
    """
    client = redis_clients.async_client(settings)
    store = JourneyStore(client, settings.key_prefix, settings.topic_touchpoints)
    n = sum(ends.values())
    first = None
    last_progress_at, last_applied = time.monotonic(), -1
    try:
        with make_progress() as progress:
            task = progress.add_task("whole pipeline (1 worker)", total=n, note="joining the group…")
            while True:
                check_alive(worker, log_path)
                applied, backlog = await applied_and_backlog(store, settings.partitions)
                now = time.monotonic()
                done = sum(applied.values())
                if done and first is None:
                    first, cpu_before = now, cpu_snapshot(pids)
                    progress.update(task, note=f"joined after {first - started:.1f}s")
                if done != last_applied:
                    last_progress_at, last_applied = now, done
                progress.update(task, completed=done)
                if all(applied[p] >= ends[p] for p in ends) and backlog == 0:
                    finished, cpu_after = now, cpu_snapshot(pids)
                    break
                if now - last_progress_at > stall_timeout:
                    what = (
                        f"the worker applied nothing within {stall_timeout:.0f}s of starting"
                        if first is None
                        else f"the worker made no progress for {stall_timeout:.0f}s"
                    )
                    raise BenchError(
                        f"{what} ({done}/{n} applied, {backlog} outbox entries pending); "
                        f"the end of {log_path}:\n{log_tail(log_path)}"
                    )
                await asyncio.sleep(0.05)
        stats = await wait_for_stats(client, Keys.for_settings(settings), n, worker, log_path)
    finally:
        await client.aclose()
    return PipelineResult(n, finished - first, finished - started, stats, cpu_used(cpu_before, cpu_after))


async def wait_for_stats(
    client: aioredis.Redis, keys: Keys, n: int, worker: subprocess.Popen, log_path: Path, timeout: float = 10.0
) -> dict[str, int]:
    """The worker's stats once they account for all `n` inputs (the hash is refreshed every second)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await read_stats(client, keys)
        if accounted(stats) >= n:
            return stats
        check_alive(worker, log_path)
        if time.monotonic() > deadline:
            raise BenchError(
                f"the worker caught up but its stats hash accounts for only {accounted(stats)}/{n} inputs "
                f"after {timeout:.0f}s: {stats}"
            )
        await asyncio.sleep(0.2)


async def wait_caught_up(
    settings: Settings, ends: dict[int, int], worker: subprocess.Popen, log_path: Path, timeout: float
) -> None:
    """Wait until every input offset below `ends` is applied and every outbox is empty."""
    client = redis_clients.async_client(settings)
    store = JourneyStore(client, settings.key_prefix, settings.topic_touchpoints)
    try:
        deadline = time.monotonic() + timeout
        while True:
            check_alive(worker, log_path)
            applied, backlog = await applied_and_backlog(store, settings.partitions)
            if all(applied[p] >= ends[p] for p in ends) and backlog == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the worker did not catch up within {timeout:.0f}s; the end of {log_path}:\n{log_tail(log_path)}"
                )
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- (c) latency at steady load


@dataclass
class LatencyResult:
    produced: int
    produce_seconds: float
    latencies_ms: list[float]

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the matched latencies."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def new_customer_event(run: str, i: int, occurred_at: str) -> tuple[str, bytes, bytes]:
    """(event id, key, value) of the first page_view of a brand-new customer."""
    cid = f"bench-{run}-{i:07d}"
    event = {
        "event_id": f"{cid}-0000",
        "customer_id": cid,
        "occurred_at": occurred_at,
        "stage": "pre_purchase",
        "touchpoint": "page_view",
        "channel": "web",
    }
    return event["event_id"], cid.encode(), json.dumps(event, separators=(",", ":")).encode()


async def collect_changes(
    consumer: AIOKafkaConsumer, sent_at: dict[str, float], latencies: list[float], stop: asyncio.Event
) -> None:
    """Match each type change's `caused_by` to the produce time of its event, until told to stop."""
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=50, max_records=5_000)
        now = time.monotonic()
        for records in batch.values():
            for record in records:
                caused_by = json.loads(record.value)["caused_by"]
                produced = sent_at.pop(caused_by, None)
                if produced is not None:
                    latencies.append((now - produced) * 1000)


async def paced_produce(
    producer: AIOKafkaProducer,
    topic: str,
    rate: float,
    seconds: float,
    occurred_at: str,
    sent_at: dict[str, float],
    progress: Progress,
    task,
) -> int:
    """Produce new-customer events at `rate`/s for `seconds`: every ~10 ms, whatever is due by then."""
    run = f"{int(time.time()) % 100000:05d}"
    total = int(rate * seconds)
    futures = []
    sent = 0
    started = time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate))
        while sent < due:
            event_id, key, value = new_customer_event(run, sent, occurred_at)
            sent_at[event_id] = time.monotonic()
            futures.append(await producer.send(topic, value, key=key))
            sent += 1
        progress.update(task, completed=sent)
        await asyncio.sleep(0.01)
    await asyncio.gather(*futures)
    return sent


async def steady_latency(
    settings: Settings, rate: float, seconds: float, occurred_at: str, drain_s: float = 20.0
) -> LatencyResult:
    """Produce at a fixed rate to the running worker and measure produce → type change visible."""
    bootstrap = settings.kafka_bootstrap
    # (this Tansu's end offsets can fall short of the true end: we may read a few older changes, which match nothing)
    ends = await end_offsets(bootstrap, settings.topic_type_changes, settings.partitions)
    consumer = clients.consumer(kafka_settings(bootstrap), fetch_max_wait_ms=20)
    producer = clients.producer(kafka_settings(bootstrap), linger_ms=2, acks=1)
    await consumer.start()
    await producer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    stop = asyncio.Event()
    try:
        consumer.assign([TopicPartition(settings.topic_type_changes, p) for p in ends])
        for p, offset in ends.items():
            consumer.seek(TopicPartition(settings.topic_type_changes, p), offset)
        collector = asyncio.create_task(collect_changes(consumer, sent_at, latencies, stop))
        with make_progress() as progress:
            task = progress.add_task(f"steady load at {rate:.0f}/s", total=int(rate * seconds), note="")
            started = time.monotonic()
            produced = await paced_produce(
                producer, settings.topic_touchpoints, rate, seconds, occurred_at, sent_at, progress, task
            )
            produce_seconds = time.monotonic() - started
            drain = progress.add_task("waiting for the last changes", total=produced, note="")
            deadline = time.monotonic() + drain_s
            while sent_at and time.monotonic() < deadline and not collector.done():
                progress.update(drain, completed=len(latencies))
                await asyncio.sleep(0.05)
            progress.update(drain, completed=len(latencies))
        stop.set()
        await collector
    finally:
        stop.set()
        await producer.stop()
        await consumer.stop()
    return LatencyResult(produced, produce_seconds, latencies)


# --------------------------------------------------------------------------- (a') faust's ceiling


async def faust_ceiling(
    stack: LocalStack, env: dict[str, str], n: int, stall_timeout: float, pids: dict[str, int], intake: str = "faust"
) -> tuple[BareResult, dict[str, float]]:
    """Run `benchmarks/faust_ceiling.py` with `faust -A` in a group of its own until it has taken all `n`
    input events; its rate is N / (its first batch → its last), as it reports them to Redis. `intake`: faust's
    own fetch loop (`faust`) or the Faust engine's (`fast`, `streams/live/faust_intake.py`)."""
    key = f"bench:faust-ceiling-{intake}"
    ceiling_env = {
        **env,
        "JOURNEY_CONSUMER_GROUP": f"bench-faust-ceiling-{intake}",
        "BENCH_CEILING_KEY": key,
        "BENCH_CEILING_INTAKE": intake,
    }
    log_path = stack.workdir / f"faust-ceiling-{intake}.log"
    faust = str(Path(sys.executable).with_name("faust"))
    command = [faust, "-A", "benchmarks.faust_ceiling", "worker", "-l", "warn", "--without-web"]
    started = time.time()
    proc = start_worker(ceiling_env, log_path, command=command)
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        with make_progress() as progress:
            task = progress.add_task(f"faust ceiling (take + ack, {intake} intake)", total=n, note="joining the group…")
            last_taken, last_progress_at, cpu_before = -1, time.monotonic(), None
            while True:
                check_alive(proc, log_path)
                raw = await client.hgetall(key)
                taken = int(raw.get(b"taken", 0))
                now = time.monotonic()
                if taken and cpu_before is None:
                    cpu_before = cpu_snapshot({"faust ceiling": proc.pid, **pids})
                if taken != last_taken:
                    last_taken, last_progress_at = taken, now
                progress.update(task, completed=taken)
                if taken >= n:
                    cpu = cpu_used(cpu_before or {}, cpu_snapshot({"faust ceiling": proc.pid, **pids}))
                    break
                if now - last_progress_at > stall_timeout:
                    raise BenchError(
                        f"faust's ceiling agent took {taken}/{n} events and then nothing for {stall_timeout:.0f}s; "
                        f"the end of {log_path}:\n{log_tail(log_path)}"
                    )
                await asyncio.sleep(0.05)
        first, last = float(raw[b"first"]), float(raw[b"last"])
    finally:
        await client.aclose()
        stop_worker(proc)
    return BareResult(taken, last - first, first - started), cpu


# --------------------------------------------------------------------------- (b) and (c) for one engine


def engine_env(env: dict[str, str], engine: str) -> dict[str, str]:
    """The settings of one engine's run: its own group, key prefix and output topics, the same input."""
    return {
        **env,
        "JOURNEY_CONSUMER_GROUP": f"bench-{engine}",
        "JOURNEY_KEY_PREFIX": f"bench-{engine}",
        "JOURNEY_TOPIC_TYPE_CHANGES": f"bench.{engine}.type-changes",
        "JOURNEY_TOPIC_NURTURE_ACTIONS": f"bench.{engine}.nurture-actions",
        "JOURNEY_TOPIC_DEAD_LETTER": f"bench.{engine}.dead-letter",
    }


async def engine_phases(
    args, stack: LocalStack, env: dict[str, str], engine: str, ends: dict[int, int], last_time: str, box: dict
) -> tuple[PipelineResult, LatencyResult | None]:
    """(b) and (c) with one worker of `engine`; `box` receives the worker so the caller can always stop it."""
    env = engine_env(env, engine)
    if args.scrape_every > 0:
        env["JOURNEY_HTTP_PORT"] = str(free_port())
    settings = settings_from_env(env)
    await ensure_topics(settings)
    log_path = stack.workdir / f"worker-{engine}.log"
    started = time.monotonic()
    box["worker"] = worker = start_worker(env, log_path, engine)
    console.print(f"{engine} worker pid {worker.pid}, log {log_path}")
    pids = {
        f"worker ({engine})": worker.pid,
        "broker (Tansu)": stack.processes["broker"].pid,
        "redis-server": stack.processes["redis"].pid,
        "this benchmark": os.getpid(),
    }
    scrapes = {"ok": 0, "failed": 0}
    scraper = (
        asyncio.create_task(scrape_metrics(settings.http_port, args.scrape_every, scrapes))
        if settings.http_port
        else None
    )
    try:
        pipe = await run_pipeline(settings, worker, started, ends, log_path, args.stall_timeout, pids)
        console.print(f"(b) whole pipeline, {engine} engine: {pipe.rate:,.0f} ev/s")
        lat = None
        if args.steady_seconds > 0 and args.steady_rate > 0:
            await wait_caught_up(settings, ends, worker, log_path, timeout=30)
            lat = await steady_latency(settings, args.steady_rate, args.steady_seconds, last_time)
            check_alive(worker, log_path)
    finally:
        if scraper is not None:
            scraper.cancel()
        stop_worker(worker)
        box.pop("worker", None)
    if scraper is not None:
        console.print(
            f"/metrics scraped every {args.scrape_every:g}s: {scrapes['ok']} answered, {scrapes['failed']} failed"
        )
    return pipe, lat


def print_engines(
    bare: BareResult,
    ceilings: dict[str, tuple[BareResult, float | None]],
    pipes: dict[str, PipelineResult],
    worker_cpu: dict[str, float | None],
) -> None:
    """The rates of one run side by side, with the worker's CPU per event, and the target: the faust engine
    ≥ 80 % of faust's ceiling (that with faust's own fetch loop, and that fetching as the engine does)."""
    t = Table(title="Engines on the same events (full rules)")
    t.add_column("what")
    t.add_column("events/s", justify="right")
    t.add_column("worker CPU µs/event", justify="right")
    t.add_column("ratio", justify="right")
    t.add_row("bare aiokafka loop (consume → json → produce)", f"{bare.rate:,.0f}", "", "")

    def us(seconds: float | None, events: int) -> str:
        return "" if seconds is None else f"{1e6 * seconds / events:.0f}"

    for intake, (ceiling, cpu) in ceilings.items():
        t.add_row(
            f"faust's ceiling, {intake} intake (agent: noack_take + ack, nothing else)",
            f"{ceiling.rate:,.0f}",
            us(cpu, ceiling.events),
            "",
        )
    for engine, pipe in pipes.items():
        cpu = us(worker_cpu.get(engine), pipe.events)
        if engine == "faust" and ceilings:
            parts = []
            for intake, (ceiling, _) in ceilings.items():
                ratio = pipe.rate / ceiling.rate
                style = "green" if ratio >= 0.8 else "red"
                parts.append(f"[{style}]{ratio:.2f}[/] of the {intake}-intake ceiling")
            t.add_row("faust engine", f"{pipe.rate:,.0f}", cpu, ", ".join(parts) + " (target ≥ 0.8)")
        else:
            t.add_row(f"{engine} engine", f"{pipe.rate:,.0f}", cpu, f"{pipe.rate / bare.rate:.2f} of the bare loop")
    console.print(t)


# --------------------------------------------------------------------------- report


def print_report(
    args,
    n: int,
    preproduce_s: float,
    bare: BareResult,
    pipe: PipelineResult,
    lat: LatencyResult | None,
    engine: str = "aiokafka",
) -> None:
    """The figures of one engine's run as rich tables."""
    stats = pipe.stats
    ratio = pipe.rate / bare.rate
    t = Table(title=f"Throughput, {engine} engine: {n} events, {args.partitions} partitions, 1 worker")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("pre-produce (aiokafka, batched)", f"{n / preproduce_s:,.0f} ev/s  ({preproduce_s:.1f}s)")
    t.add_row("(a) bare loop: consume → json → produce", f"{bare.rate:,.0f} ev/s  ({bare.seconds:.1f}s)")
    t.add_row("    its group join", f"{bare.join_seconds:.1f}s")
    t.add_row("(b) whole pipeline, after the join", f"{pipe.rate:,.0f} ev/s  ({pipe.seconds:.1f}s)")
    t.add_row(
        "    including worker start and group join",
        f"{pipe.events / pipe.seconds_with_join:,.0f} ev/s  ({pipe.seconds_with_join:.1f}s)",
    )
    style = "green" if ratio >= 0.5 else "red"
    t.add_row("pipeline / bare loop (target ≥ 0.5)", f"[{style}]{ratio:.2f}[/]")
    events = stats.get("events", 0)
    t.add_row(
        "Redis round trips per event",
        f"{stats.get('redis_round_trips', 0) / max(events, 1):.4f}  ({stats.get('redis_round_trips', 0):,} trips)",
    )
    console.print(t)

    w = Table(title="Worker counters (stats hash)")
    w.add_column("counter")
    w.add_column("value", justify="right")
    for name in (
        "events",
        "changes",
        "actions",
        "published",
        "suppressed",
        "dead_lettered",
        "duplicates",
        "redelivered",
        "fenced_batches",
        "redis_round_trips",
    ):
        w.add_row(name, f"{stats.get(name, 0):,}")
    console.print(w)

    if pipe.cpu:
        c = Table(title=f"CPU used during (b), {pipe.seconds:.1f}s on {os.cpu_count()} cores")
        c.add_column("process")
        c.add_column("CPU seconds", justify="right")
        c.add_column("% of one core", justify="right")
        c.add_column("µs per event", justify="right")
        for name, used in pipe.cpu.items():
            c.add_row(name, f"{used:.1f}", f"{100 * used / pipe.seconds:.0f}%", f"{1e6 * used / pipe.events:.0f}")
        console.print(c)

    if lat is None:
        return
    s = Table(
        title=f"Latency at steady load: produce → type change visible ({args.steady_rate:.0f}/s "
        f"for {args.steady_seconds:.0f}s, new customers)"
    )
    s.add_column("what")
    s.add_column("value", justify="right")
    s.add_row(
        "produced", f"{lat.produced:,} in {lat.produce_seconds:.1f}s ({lat.produced / lat.produce_seconds:,.0f}/s)"
    )
    s.add_row("matched to their type change", f"{len(lat.latencies_ms):,}")
    if lat.latencies_ms:
        s.add_row("median", f"{statistics.median(lat.latencies_ms):,.0f} ms")
        s.add_row("99th percentile", f"{lat.percentile(99):,.0f} ms")
        s.add_row("max", f"{max(lat.latencies_ms):,.0f} ms")
    console.print(s)


# --------------------------------------------------------------------------- main


async def phases(args, stack: LocalStack, env: dict[str, str], box: dict) -> None:
    """Run (a), (b) and (c) in order; `box` receives the worker process so the caller can always stop it."""
    settings = settings_from_env(env)
    await ensure_topics(settings)
    await create_topic(stack.bootstrap, SCRATCH_TOPIC, settings.partitions)

    with console.status(f"generating {args.customers} customers' journeys…"):
        messages, last_time = load_events(args.customers, args.max_events, args.seed)
    n = len(messages)
    console.print(f"{n:,} events of up to {args.customers:,} customers (last event time {last_time})")
    preproduce_s, ends = await preproduce(stack.bootstrap, settings.topic_touchpoints, messages)
    ends = {p: ends.get(p, 0) for p in range(settings.partitions)}
    if sum(ends.values()) != n:
        raise BenchError(f"the input topic holds {sum(ends.values())} messages, {n} were produced")
    del messages

    bare = await bare_loop(stack.bootstrap, settings.topic_touchpoints, n, settings.session_timeout_s)
    console.print(f"(a) bare loop: {bare.rate:,.0f} ev/s")

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    ceilings: dict[str, tuple[BareResult, float | None]] = {}
    if "faust" in engines:
        system = {"broker (Tansu)": stack.processes["broker"].pid, "redis-server": stack.processes["redis"].pid}
        for intake in ("faust", "fast"):
            ceiling, ceiling_cpu = await faust_ceiling(stack, env, n, args.stall_timeout, system, intake)
            used = ceiling_cpu.get("faust ceiling")
            ceilings[intake] = (ceiling, used)
            per_event = f", {1e6 * used / n:.0f} µs CPU per event" if used is not None else ""
            console.print(f"(a') faust's ceiling, {intake} intake: {ceiling.rate:,.0f} ev/s{per_event}")

    pipes: dict[str, PipelineResult] = {}
    worker_cpu: dict[str, float | None] = {}
    for engine in engines:
        pipe, lat = await engine_phases(args, stack, env, engine, ends, last_time, box)
        pipes[engine] = pipe
        worker_cpu[engine] = pipe.cpu.get(f"worker ({engine})")
        print_report(args, n, preproduce_s, bare, pipe, lat, engine)
    print_engines(bare, ceilings, pipes, worker_cpu)


# --------------------------------------------------------------------------- --table


async def table_row(
    args, stack: LocalStack, env: dict[str, str], name: str, workers: int, ends: dict[int, int], box: dict
) -> PipelineResult:
    """`workers` worker processes in one group on the pre-produced input, timed from the first batch applied
    until every partition mark reaches its end offset and every outbox is empty."""
    env = {**engine_env(env, name), "JOURNEY_HTTP_PORT": "0"}
    settings = settings_from_env(env)
    await ensure_topics(settings)
    procs = []
    for i in range(workers):
        proc = start_worker(env, stack.workdir / f"worker-{name}-{i}.log")
        procs.append(proc)
        box[f"worker-{name}-{i}"] = proc
    client = redis_clients.async_client(settings)
    store = JourneyStore(client, settings.key_prefix, settings.topic_touchpoints)
    n = sum(ends.values())
    logs = [stack.workdir / f"worker-{name}-{i}.log" for i in range(workers)]
    started = time.monotonic()
    first = None
    counted = n  # the events timed: with several workers, those applied after all of them hold partitions
    try:
        while True:
            for proc, log_path in zip(procs, logs, strict=True):
                check_alive(proc, log_path)
            applied, backlog = await applied_and_backlog(store, settings.partitions)
            now = time.monotonic()
            if first is None and sum(applied.values()) and shared(logs, settings.partitions):
                first, counted = now, n - sum(applied.values())
            if all(applied[p] >= ends[p] for p in ends) and backlog == 0:
                break
            if now - started > args.stall_timeout * 5:
                raise BenchError(f"{name}: not caught up within {args.stall_timeout * 5:.0f}s")
            await asyncio.sleep(0.05)
        stats = await wait_for_stats(
            client, Keys.for_settings(settings), n, procs[0], stack.workdir / f"worker-{name}-0.log"
        )
    finally:
        await client.aclose()
        for i, proc in enumerate(procs):
            stop_worker(proc)
            box.pop(f"worker-{name}-{i}", None)
    if first is None or counted <= 0:
        raise BenchError(f"{name}: the input was applied before every worker held partitions; use more events")
    console.print(f"{name}: {counted / (now - first):,.0f} ev/s ({counted:,} events timed)")
    return PipelineResult(counted, now - first, now - started, stats, {})


def shared(logs: list[Path], partitions: int) -> bool:
    """Whether every worker's latest assignment (its log's last `assigned partitions: [...]`) is non-empty and
    together they cover each partition once: the group has settled with all workers in it."""
    latest = []
    for log_path in logs:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if "assigned partitions: [" in ln]
        if not lines:
            return False
        held = lines[-1].split("assigned partitions: [", 1)[1].split("]", 1)[0]
        latest.append([int(x) for x in held.split(",") if x.strip()])
    return all(latest) and sorted(p for held in latest for p in held) == list(range(partitions))


async def table(args, stack: LocalStack, env: dict[str, str], box: dict) -> None:
    """The capacity table of issue 12: the same events through three deployments, one after another."""
    settings = settings_from_env(env)
    await ensure_topics(settings)
    messages, _ = load_events(args.customers, args.max_events, args.seed)
    n = len(messages)
    _, ends = await preproduce(stack.bootstrap, settings.topic_touchpoints, messages)
    ends = {p: ends.get(p, 0) for p in range(settings.partitions)}
    del messages
    cluster = RedisCluster(stack.workdir / "redis-cluster")
    try:
        cluster_env = {**env, "JOURNEY_REDIS_URL": cluster.url, "JOURNEY_REDIS_CLUSTER": "true"}
        rows = [
            ("1 worker, 1 Redis", await table_row(args, stack, env, "one", 1, ends, box)),
            ("1 worker, 3-master cluster", await table_row(args, stack, cluster_env, "cluster", 1, ends, box)),
            ("2 workers, 1 Redis", await table_row(args, stack, env, "two", 2, ends, box)),
        ]
    finally:
        cluster.close()
    t = Table(title=f"{n:,} events, {settings.partitions} partitions, metrics endpoint off")
    for col in ("deployment", "events/s", "wall µs/event", "Redis round trips", "s incl. join"):
        t.add_column(col, justify="right")
    for name, r in rows:
        t.add_row(
            name,
            f"{r.rate:,.0f}",
            f"{1e6 / r.rate:.0f}",
            str(r.stats.get("redis_round_trips", r.stats.get("round_trips", "?"))),
            f"{r.seconds_with_join:.1f}",
        )
    console.print(t)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run the phases, print the figures; always stop the worker and the stack."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` cleans up like Ctrl-C does
    stack = LocalStack()
    box: dict[str, subprocess.Popen] = {}
    try:
        with console.status("starting the local broker (Tansu) and redis-server…"):
            stack.start()
        # The worker runs this checkout's code, wherever the script is started from: so a checkout of an
        # earlier commit can be benchmarked beside this one (README, "Benchmark").
        here = str(Path(__file__).resolve().parents[1])
        pythonpath = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
        env = local_env(stack, JOURNEY_PARTITIONS=str(args.partitions), JOURNEY_CLOCK="event", PYTHONPATH=pythonpath)
        if args.scrape_every > 0:
            env["JOURNEY_HTTP_PORT"] = str(free_port())
        console.print(f"broker {stack.bootstrap}, Redis {stack.redis_url}, logs in {stack.workdir}")
        asyncio.run((table if args.table else phases)(args, stack, env, box))
        return 0
    except BenchError as exc:
        console.print("[red]benchmark failed:[/]")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the worker, the broker and Redis[/]")
        return 130
    finally:
        for proc in box.values():
            stop_worker(proc)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
