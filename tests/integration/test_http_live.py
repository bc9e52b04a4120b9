"""The worker's HTTP endpoint on a real worker process, real Tansu broker and real redis-server.

/metrics after a known journey, parsed with prometheus-client's own parser and checked against
what the topics hold and the counters the worker publishes to Redis; /customers/{id} with and
without the token; /healthz; and /readyz answering 503 while the worker cannot reach Kafka (so
cannot have joined its group), or while its join is held, then 200 once it has joined. Each runs on
both engines (the `engine` fixture): the Faust app answers its probes from start-up too.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from http_probe import free_port, http, wait_for
from journeys import event as touchpoint
from prometheus_client.parser import text_string_to_metric_families

from streams.local import sample

pytestmark = pytest.mark.integration

TOKEN = "integration-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_and_the_profile_tell_a_known_journey(deploy, engine):
    """Alice's journey, one re-sent event and every kind of bad message: the metrics count exactly what
    the topics hold, and her profile is what `journey explain` would show."""
    d = deploy(JOURNEY_CLOCK="wall")
    day0 = (datetime.now(UTC) - timedelta(days=100)).replace(microsecond=0)
    journey = [
        touchpoint("alice", 1, "page_view", day0),
        touchpoint("alice", 2, "purchase", day0 + timedelta(days=1)),
        touchpoint("alice", 3, "purchase", day0 + timedelta(days=6)),
        touchpoint("alice", 4, "purchase", day0 + timedelta(days=11)),
    ]
    d.produce(journey)
    d.produce([journey[1]])  # re-sent: a duplicate, dropped by its event id
    bad = sample.bad_messages()
    d.produce_raw(bad)
    port = free_port()
    worker = d.start_worker(JOURNEY_HTTP_PORT=str(port), JOURNEY_HTTP_TOKEN=TOKEN)
    d.wait_caught_up()
    d.produce([touchpoint("alice", 5, "purchase", day0 + timedelta(days=90))])  # back from at risk
    d.wait_caught_up()

    changes, actions, letters = d.changes(), d.actions(), d.dead_letters()
    published = len(changes) + len(actions) + len(letters)
    d.wait_stat(worker, "published", published)

    def scraped():
        status, text = http(port, "/metrics")
        assert status == 200
        found = samples(text)
        lags = [v for (name, _), v in found.items() if name == "journey_consumer_lag_records"]
        # the lag is read from the fetches, which go on after catching up: wait for them to see the end
        return found if len(lags) == d.settings.partitions and not any(lags) else None

    m = wait_for("/metrics with no lag left", scraped, d)

    def labelled(name: str) -> dict[tuple, float]:
        return {labels: v for (n, labels), v in m.items() if n == name and v}

    assert labelled("journey_events_total") == {
        (("outcome", "applied"),): 5,
        (("outcome", "duplicate"),): 1,
        (("outcome", "dead_lettered"),): len(bad),
    }
    # the worker's own counters, as it publishes them to Redis, say the same
    assert d.stat(worker, "events") - d.stat(worker, "duplicates") == 5
    assert d.stat(worker, "duplicates") == 1 and d.stat(worker, "dead_lettered") == len(bad)

    by_type = Counter((c["dimension"], c["to"] or c["from"], "entered" if c["to"] else "cleared") for c in changes)
    assert labelled("journey_type_changes_total") == {
        (("change", change), ("dimension", dimension), ("type", type_)): n
        for (dimension, type_, change), n in by_type.items()
    }
    assert by_type[("lifecycle", "loyal", "entered")] == 2  # the journey is the one we know

    sent = Counter(a["action"] for a in actions)
    assert labelled("journey_actions_total") == {
        **{(("action", a), ("outcome", "sent"), ("reason", "")): n for a, n in sent.items()},
        (("action", "loyalty_programme_invite"), ("outcome", "suppressed"), ("reason", "cooldown")): 1,
    }
    assert labelled("journey_dead_letters_total") == {
        (("reason", "invalid_json"),): 1,
        (("reason", "invalid_event"),): 5,
        (("reason", "too_large"),): 1,
        (("reason", "missing_key"),): 1,
    }
    assert sum(labelled("journey_dead_letters_total").values()) == len(letters)
    assert m["journey_published_messages_total", ()] == published
    assert m["journey_redis_round_trips_total", ()] > 0
    assert m["journey_quarantined_customers_total", ()] == 0
    assert m["journey_assigned_partitions", ()] == d.settings.partitions
    assert m["journey_outbox_messages", ()] == 0
    assert m["journey_due_customers", ()] == 0  # Alice's next check is weeks away
    assert m["journey_batch_duration_seconds_count", ()] >= 2
    assert m["journey_event_to_change_latency_seconds_count", ()] >= 2
    assert m["journey_event_to_change_latency_seconds_sum", ()] >= 0
    assert m["journey_sweep_duration_seconds_count", ()] >= 1

    assert http(port, "/healthz") == (200, json.dumps({"status": "ok"}))
    assert http(port, "/readyz") == (200, json.dumps({"status": "ready"}))

    # the profile: only with the token
    status, body = http(port, "/customers/alice")
    assert status == 401 and "JOURNEY_HTTP_TOKEN" in json.loads(body)["error"]
    assert http(port, "/customers/alice", token="not-the-token-0123456789")[0] == 401
    status, body = http(port, "/customers/alice", token=TOKEN)
    assert status == 200, body
    profile = json.loads(body)
    assert profile["customer_id"] == "alice"
    assert profile["lifecycle"]["type"] == "loyal"
    assert profile["lifecycle"]["since"].startswith((day0 + timedelta(days=90)).date().isoformat())
    assert [t["type"] for t in profile["traits"]] == ["efficient"]
    decides = [r for r in profile["rules"] if r["decides"]]
    assert decides == [{"rule": "lifecycle.loyal", "decides": True, "evidence": {"purchases": 4}}]
    # the newest changes, as many as the history keeps (JOURNEY_HISTORY_LENGTH)
    newest = [c["change_id"] for c in reversed(changes)][: d.settings.history_length]
    assert len(newest) < len(changes), "the journey has more changes than the history keeps"
    assert [c["change_id"] for c in profile["changes"]] == newest
    assert profile["changes"][0]["caused_by"] == "alice-5" and profile["changes"][0]["from"] == "at_risk"
    assert {a["action"] for a in profile["actions"]["sent"]} >= {"win_back_offer", "loyalty_programme_invite"}
    [suppressed] = profile["actions"]["suppressed"]
    assert (suppressed["action"], suppressed["kind"]) == ("loyalty_programme_invite", "cooldown")
    assert http(port, "/customers/nobody", token=TOKEN)[0] == 404
    assert TOKEN not in d.worker_log(worker)


class Relay:
    """A TCP relay on loopback to the broker, listening only once `open()` is called."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.stopping = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def open(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.2)
        self.sockets.append(listener)
        self._spawn(self._accept, listener)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            client.settimeout(None)
            self.sockets += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopping.set()
        for s in self.sockets:
            s.close()
        for thread in self.threads:
            thread.join(timeout=5)


def test_readyz_is_503_until_the_worker_has_joined_its_group(deploy, engine):
    """The worker's only way to Kafka is a relay that is not listening yet: it cannot join, /readyz says so
    (503, naming Kafka) while /healthz stays 200; once the relay opens it joins, and /readyz turns 200.
    The worker logs JSON lines meanwhile."""
    d = deploy()
    host, _, port = d.stack.bootstrap.rpartition(":")
    relay = Relay(free_port(), (host, int(port)))
    http_port = free_port()
    worker = d.start_worker(
        JOURNEY_KAFKA_BOOTSTRAP=f"127.0.0.1:{relay.port}",
        JOURNEY_HTTP_PORT=str(http_port),
        JOURNEY_RETRY_MAX_BACKOFF_S="0.5",
        JOURNEY_LOG_FORMAT="json",
    )
    try:
        status, body = wait_for("the endpoint answering /readyz", lambda: http(http_port, "/readyz"), d)
        assert status == 503, body
        answer = json.loads(body)
        assert answer["status"] == "not_ready" and "Kafka" in answer["reason"]
        assert http(http_port, "/healthz")[0] == 200

        relay.open()
        wait_for("/readyz turning 200", lambda: http(http_port, "/readyz")[0] == 200, d)
        d.produce([touchpoint("bob", 1, "page_view", datetime(2026, 3, 1, tzinfo=UTC))])
        d.wait_caught_up()
    finally:
        relay.close()
    lines = [line for line in d.worker_log(worker).splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)
    assert any("HTTP endpoint on 127.0.0.1" in json.loads(line)["message"] for line in lines)


def test_a_worker_waiting_to_join_a_group_answers_its_probes(deploy, engine):
    """A second worker joins a one-partition group whose first member is frozen (SIGSTOP), so the join
    is held until the group gives up on the first: meanwhile the second answers /healthz 200 and /readyz
    503 naming the group it joins; once a member (with or without the partition), /readyz turns 200."""
    d = deploy(JOURNEY_PARTITIONS="1", JOURNEY_SESSION_TIMEOUT_S="12", JOURNEY_HEARTBEAT_INTERVAL_S="1")
    group = d.settings.consumer_group
    first_port, second_port = free_port(), free_port()
    first = d.start_worker(JOURNEY_HTTP_PORT=str(first_port))
    wait_for("the first worker ready", lambda: http(first_port, "/readyz")[0] == 200, d)
    first.send_signal(signal.SIGSTOP)
    try:
        second = d.start_worker(JOURNEY_HTTP_PORT=str(second_port))
        answers: list[tuple[int, str]] = []

        def ready() -> bool:
            assert http(second_port, "/healthz") == (200, json.dumps({"status": "ok"}))
            answers.append(http(second_port, "/readyz"))
            return answers[-1][0] == 200

        wait_for("the second worker ready", ready, d, timeout=90)
        waiting = [json.loads(body) for status, body in answers[:-1]]
        assert waiting, "the second worker was ready at once: its join was not held"
        assert all(a["status"] == "not_ready" for a in waiting), answers
        reasons = {a["reason"] for a in waiting}
        assert f"joining consumer group {group}" in reasons, reasons
        assert reasons <= {f"joining consumer group {group}", f"connecting to Kafka at {d.settings.kafka_bootstrap}"}
        assert "assigned partitions: [" in d.worker_log(second)
    finally:  # killed where it froze: a graceful stop would first wait out the group's rejoin
        first.kill()
        first.wait(timeout=10)
        d.stopped.add(first.pid)
