"""The Faust engine as users run it, on a real Tansu broker and real redis-servers.

`faust -A streams.live.faust_app worker` itself (not `journey worker --engine faust`) applies a small
stream, dead-letters its bad messages and stops cleanly on SIGTERM; and the app's /readyz, served by
faust's web server, answers 503 naming Redis while Redis is away and 200 once it is back, while the
profile route refuses a request without the token. The shared live suite (journey, dead letters, kill -9,
rebalance, live = offline) runs on this engine too, through the `engine` fixture.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from http_probe import free_port, http, wait_for
from journeys import event as touchpoint
from prometheus_client.parser import text_string_to_metric_families

from streams.local import sample

pytestmark = pytest.mark.integration

TOKEN = "integration-token-0123456789"

FAUST = str(Path(sys.executable).with_name("faust"))


def test_faust_dash_a_worker_applies_the_stream_and_stops_on_sigterm(deploy):
    d = deploy(engine="faust")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    d.produce([touchpoint("bob", 1, "page_view", at), touchpoint("bob", 2, "purchase", at)])
    bad = sample.bad_messages()[:3]
    d.produce_raw(bad)
    d.produce([touchpoint("carol", 1, "page_view", at)])
    http_port = free_port()
    worker = d.start_worker(
        command=[FAUST, "-A", "streams.live.faust_app", "worker", "-l", "info"], JOURNEY_HTTP_PORT=str(http_port)
    )
    d.wait_caught_up(timeout=90)
    wait_for("/readyz 200", lambda: http(http_port, "/readyz")[0] == 200, d)
    status, text = http(http_port, "/metrics")
    applied = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "journey_events_total" and s.labels == {"outcome": "applied"}
    ]
    assert status == 200 and applied == [3], text[:2000]

    changes = [(c["customer_id"], c["to"]) for c in d.changes() if c["dimension"] == "lifecycle"]
    assert sorted(changes) == [("bob", "new"), ("bob", "prospect"), ("carol", "prospect")]
    assert [to for customer, to in changes if customer == "bob"] == ["prospect", "new"]
    assert len(d.dead_letters()) == len(bad)
    assert d.wait_stat(worker, "events", 3) == 3
    log = d.worker_log(worker)
    assert "assigned partitions: [0, 1]" in log and "faust worker started" in log

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, d.worker_log(worker)
    d.stopped.add(worker.pid)


def test_faust_readyz_follows_redis_and_the_profile_wants_the_token(deploy, redis_server):
    redis_server.start()  # no persistence: it comes back empty
    d = deploy(engine="faust", JOURNEY_REDIS_URL=redis_server.url, JOURNEY_RETRY_MAX_BACKOFF_S="0.5")
    http_port = free_port()
    d.produce([touchpoint("dana", 1, "page_view", datetime(2026, 3, 1, tzinfo=UTC))])
    d.start_worker(JOURNEY_HTTP_PORT=str(http_port), JOURNEY_HTTP_TOKEN=TOKEN)
    d.wait_caught_up(timeout=90)
    wait_for("/readyz 200", lambda: http(http_port, "/readyz")[0] == 200, d)
    assert http(http_port, "/healthz") == (200, json.dumps({"status": "ok"}))
    status, body = http(http_port, "/customers/dana")
    assert status == 401 and "JOURNEY_HTTP_TOKEN" in json.loads(body)["error"]
    status, body = http(http_port, "/customers/dana", token=TOKEN)
    assert status == 200 and json.loads(body)["lifecycle"]["type"] == "prospect", body
    d.redis.close()

    redis_server.shutdown()
    status, body = wait_for(
        "/readyz 503", lambda: (lambda a: a if a[0] == 503 else None)(http(http_port, "/readyz")), d
    )
    answer = json.loads(body)
    assert answer["status"] == "not_ready" and "Redis" in answer["reason"], answer
    assert http(http_port, "/customers/dana", token=TOKEN)[0] == 503

    redis_server.start()
    wait_for("/readyz 200 again", lambda: http(http_port, "/readyz")[0] == 200, d)
    # the new Redis is empty: the worker finds the marks gone back, reads its partitions again, and
    # dana's state is there once more
    d.wait_caught_up(timeout=90)
    status, body = http(http_port, "/customers/dana", token=TOKEN)
    assert status == 200 and json.loads(body)["lifecycle"]["type"] == "prospect", body
