"""Fixtures for the integration tests: one real Tansu broker and one real redis-server per session,
and per test a fresh deployment (its own topics, consumer group and Redis key prefix)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from redis_server import RedisServer

from streams.core.state import CustomerState
from streams.kafka.topics import ensure_topics
from streams.local.cluster import RedisCluster
from streams.local.demo import local_env, start_worker, stop_worker
from streams.local.stack import LocalStack
from streams.settings import Settings
from streams.store import Keys
from streams.store import clients as redis_clients

_names = itertools.count()


@pytest.fixture(scope="session")
def stack():
    with LocalStack() as running:
        yield running


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.close()


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own (`tests/redis_server.py`), not yet started; stopped at the end."""
    server = RedisServer(tmp_path / "own-redis")
    yield server
    server.stop()


@pytest.fixture(params=["redis", "cluster"])
def store_env(request) -> dict[str, str]:
    """The settings of the state store a parametrised test runs on: one redis-server, or a three-master cluster."""
    if request.param == "redis":
        return {}
    cluster = request.getfixturevalue("redis_cluster")
    return {"JOURNEY_REDIS_URL": cluster.url, "JOURNEY_REDIS_CLUSTER": "true"}


class Deployment:
    """One isolated instance of the service on the shared stack: its topics, group, key prefix and workers."""

    def __init__(
        self,
        stack: LocalStack,
        tmp_path: Path,
        input_of: Deployment | None = None,
        engine: str = "aiokafka",
        **overrides: str,
    ):
        n = next(_names)
        self.stack = stack
        self.engine = engine  # which worker `start_worker` starts: `journey worker --engine ENGINE`
        self.tmp_path = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        names = {
            "JOURNEY_TOPIC_TOUCHPOINTS": f"t{n}.touchpoints",
            "JOURNEY_TOPIC_TYPE_CHANGES": f"t{n}.type-changes",
            "JOURNEY_TOPIC_NURTURE_ACTIONS": f"t{n}.nurture-actions",
            "JOURNEY_TOPIC_DEAD_LETTER": f"t{n}.dead-letter",
            "JOURNEY_TOPIC_HOLDOUTS": f"t{n}.holdouts",
            "JOURNEY_TOPIC_ERASURES": f"t{n}.erasures",
            "JOURNEY_CONSUMER_GROUP": f"t{n}-group",
            "JOURNEY_KEY_PREFIX": f"t{n}",
            "JOURNEY_PARTITIONS": "2",
        }
        if input_of is not None:  # read the same input topic as another deployment
            names["JOURNEY_TOPIC_TOUCHPOINTS"] = input_of.settings.topic_touchpoints
        self.env = local_env(stack, **{**names, **overrides})
        self.settings = Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in self.env.items()})
        asyncio.run(ensure_topics(self.settings))
        self.redis = redis_clients.sync_client(self.settings)
        self.workers = []
        self.stopped: set[int] = set()  # pids of the workers stopped on purpose
        # Next offset of each input partition, from the produce acknowledgements: Tansu's ListOffsets
        # answers the base offset of a partition's last record batch + 1, which falls short.
        self.input_ends: dict[int, int] = input_of.input_ends if input_of is not None else {}
        self._producer = KafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=5)

    def start_worker(self, command: list[str] | None = None, **overrides: str):
        """A worker process of this deployment's engine (or `command`, with its settings in the environment)."""
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        proc = start_worker({**self.env, **overrides}, log, self.engine, command)
        self.workers.append(proc)
        return proc

    def stop_worker(self, worker) -> None:
        """Stop one worker gracefully (SIGTERM); its exit is then no failure."""
        stop_worker(worker)
        self.stopped.add(worker.pid)

    def worker_log(self, worker=None) -> str:
        """The end of every worker's log, or the whole log of one worker."""
        if worker is not None:
            return (self.tmp_path / f"worker-{self.workers.index(worker)}.log").read_text()
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.tmp_path.glob("worker-*.log")))

    def produce(self, events: list[dict]) -> list[int]:
        """Produce touchpoint events keyed by customer; returns their offsets."""
        return self.produce_raw([(e["customer_id"].encode(), json.dumps(e).encode()) for e in events])

    def produce_raw(self, messages: list[tuple[bytes | None, bytes]]) -> list[int]:
        futures = [self._producer.send(self.settings.topic_touchpoints, key=k, value=v) for k, v in messages]
        self._producer.flush()
        acks = [f.get(timeout=10) for f in futures]
        for ack in acks:
            self.input_ends[ack.partition] = max(self.input_ends.get(ack.partition, 0), ack.offset + 1)
        return [ack.offset for ack in acks]

    def partition_ends(self) -> dict[int, int]:
        return {p: self.input_ends.get(p, 0) for p in range(self.settings.partitions)}

    def caught_up(self) -> bool:
        """Every input message applied, every outbox empty, nothing due at the partition's clock."""
        keys = self.keys
        for p, end in self.partition_ends().items():
            offset, clock = self.redis.hmget(keys.mark(p), "offset", "clock")
            if end and (offset is None or int(offset) < end - 1):
                return False
            if self.redis.llen(keys.outbox(p)):
                return False
            now = float(clock) if (clock and self.settings.clock == "event") else time.time()
            if self.redis.zcount(keys.due(p), "-inf", now):
                return False
        return True

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.caught_up():
                return
            for proc in self.workers:
                if proc.poll() not in (None, -9) and proc.pid not in self.stopped:
                    raise AssertionError(f"worker exited with {proc.returncode}:\n{self.worker_log()}")
            time.sleep(0.2)
        raise AssertionError(f"the worker did not catch up within {timeout}s:\n{self.worker_log()}")

    def stat(self, worker, name: str) -> int:
        """A counter the worker process publishes to Redis every second."""
        key = f"{self.settings.key_prefix}:stats:{socket.gethostname()}:{worker.pid}"
        return int(self.redis.hget(key, name) or 0)

    def wait_stat(self, worker, name: str, at_least: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.stat(worker, name)
            if value >= at_least:
                return value
            time.sleep(0.05)
        raise AssertionError(f"worker stat {name} stayed below {at_least}:\n{self.worker_log()}")

    def read(self, topic: str, timeout: float = 60.0) -> list[dict]:
        """Every message on an output topic so far, decoded; tombstones (null values) left out."""
        return [json.loads(value) for _, value in self.records(topic, timeout) if value is not None]

    def records(self, topic: str, timeout: float = 60.0) -> list[tuple[bytes | None, bytes | None]]:
        """Every (key, value) on an output topic so far, raw (a tombstone's value is None).

        Reads past the reported end offsets until three polls in a row come back empty: Tansu
        reports the base offset of a partition's last batch + 1, so the last batch lies beyond
        that "end". A broker that never lets the reader reach the end fails the test at `timeout`
        instead of holding it until the per-test timeout.
        """
        deadline = time.monotonic() + timeout
        out: list[tuple[bytes | None, bytes | None]] = []

        def left_ms() -> int:
            """What is left of the deadline, for the client calls that would otherwise block without end."""
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"reading {topic} did not reach its end within {timeout:g}s ({len(out)} read)")
            return max(1, int(left * 1000))

        consumer = KafkaConsumer(
            bootstrap_servers=self.stack.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        try:
            tps = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps, timeout_ms=left_ms())

            def short_of_the_end() -> bool:
                for tp in tps:
                    position = consumer.position(tp, timeout_ms=left_ms())
                    if position is None or position < ends[tp]:
                        return True
                return False

            empty_polls = 0
            while empty_polls < 3 or short_of_the_end():
                left_ms()  # fails the test once the deadline has passed
                records = consumer.poll(timeout_ms=300)
                empty_polls = 0 if records else empty_polls + 1
                for batch in records.values():
                    out.extend((r.key, r.value) for r in batch)
            return out
        finally:
            consumer.close()

    def changes(self) -> list[dict]:
        return self.read(self.settings.topic_type_changes)

    def actions(self) -> list[dict]:
        return self.read(self.settings.topic_nurture_actions)

    def dead_letters(self) -> list[dict]:
        return self.read(self.settings.topic_dead_letter)

    @property
    def keys(self) -> Keys:
        return Keys.for_settings(self.settings)

    def states(self) -> dict[str, dict]:
        """Every customer's stored state, by id (a SCAN of every node on a cluster; one GET per key there)."""
        keys = list(self.redis.scan_iter(match=self.keys.state_pattern, count=1000))
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.get(k)
        return {
            Keys.customer_of(k)[1]: CustomerState.from_json(v).as_dict()
            for k, v in zip(keys, pipe.execute(), strict=True)
        }

    def partition_of(self, customer_id: str) -> int:
        """The input partition the customer's keys are under (their events were keyed by their id)."""
        from streams.kafka.publish import partition_for

        return partition_for(customer_id.encode(), self.settings.partitions)

    def close(self) -> None:
        for proc in self.workers:
            stop_worker(proc)
        self._producer.close()
        self.redis.close()


@pytest.fixture(params=["aiokafka", "faust"])
def engine(request) -> str:
    """The worker engine a parametrised test runs on: the aiokafka batch loop, or the Faust app.
    A test that takes this fixture gets deployments whose workers are of that engine."""
    return request.param


@pytest.fixture
def deploy(stack, tmp_path, request):
    """Make deployments; stops their workers at the end of the test. Their workers are of the test's
    `engine` when it takes that fixture (aiokafka otherwise, or whatever `engine=` a deployment is given)."""
    yield from _deployments(stack, tmp_path, request)


@pytest.fixture
def own_stack():
    """A broker and a Redis of the test's own, for a test that stops them (the shared `stack` must stay up)."""
    with LocalStack() as running:
        yield running


@pytest.fixture
def deploy_on_own_stack(own_stack, tmp_path, request):
    """`deploy`, on `own_stack`."""
    yield from _deployments(own_stack, tmp_path, request)


def _deployments(stack, tmp_path, request):
    made = []
    default_engine = request.getfixturevalue("engine") if "engine" in request.fixturenames else "aiokafka"

    def make(engine: str | None = None, **overrides: str) -> Deployment:
        d = Deployment(stack, tmp_path / f"d{len(made)}", engine=engine or default_engine, **overrides)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
