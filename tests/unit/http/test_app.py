"""The HTTP routes on aiohttp's test server, with a stand-in engine: metrics, probes, the profile and its token,
and the OpenAPI description held in step with what the app serves."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from journeys import alice, touchpoint
from prometheus_client.parser import text_string_to_metric_families

from schemas import Dimension
from streams.http.app import HttpConfig, Routes, ServeError, is_loopback, make_app, serve
from streams.http.engine import Unavailable
from streams.http.metrics import Telemetry
from streams.live.processor import Stats
from streams.profile import build_profile

OPENAPI = Path(__file__).resolve().parents[3] / "streams" / "http" / "openapi.yaml"
TOKEN = "t0ken-for-the-tests-0123456789"


class FakeEngine:
    """Answers as told; counts the refreshes."""

    def __init__(self, stats: Any = None, profiles: dict | None = None) -> None:
        self.stats = stats if stats is not None else Stats()
        self._telemetry = Telemetry(lambda: self.stats, "in.touchpoints")
        self.profiles = profiles or {}
        self.stalled: str | None = None
        self.not_ready: str | None = None
        self.ready_delay = 0.0
        self.profile_error: Exception | None = None
        self.refreshed = 0

    @property
    def telemetry(self) -> Telemetry:
        return self._telemetry

    def liveness(self) -> str | None:
        return self.stalled

    async def readiness(self) -> str | None:
        await asyncio.sleep(self.ready_delay)
        return self.not_ready

    async def refresh(self) -> None:
        self.refreshed += 1
        self._telemetry.lags = {0: 3, 1: 0}
        self._telemetry.assigned = 2
        self._telemetry.due_customers = 5
        self._telemetry.outbox_messages = 0

    async def profile(self, customer_id: str) -> dict | None:
        if self.profile_error is not None:
            raise self.profile_error
        return self.profiles.get(customer_id)


def call(engine: FakeEngine, config: HttpConfig, requests: list[tuple[str, str, dict]]) -> list[tuple[int, dict, Any]]:
    """(status, headers, body: JSON or text) of each (method, path, headers) request."""

    async def go():
        out = []
        async with TestClient(TestServer(make_app(engine, config))) as client:
            for method, path, headers in requests:
                response = await client.request(method, path, headers=headers)
                is_json = response.content_type == "application/json"
                body = await (response.json() if is_json else response.text())
                out.append((response.status, dict(response.headers), body))
        return out

    return asyncio.run(go())


def get(engine: FakeEngine, path: str, config: HttpConfig | None = None, **headers: str) -> tuple[int, dict, Any]:
    return call(engine, config or HttpConfig(), [("GET", path, headers)])[0]


def _alice_profile() -> dict:
    state, history, model, _ = alice()
    return build_profile(state, history, model)


# ------------------------------------------------------------------------------------- metrics


def _known_stats() -> Stats:
    stats = Stats(events=9, duplicates=2, redelivered=3, dead_lettered=4, published=20, redis_round_trips=7)
    stats.dead_letters_by_label.update({"invalid_json": 1, "too_large": 2, "internal_error": 1})
    stats.changes_by.update(
        {
            (Dimension.LIFECYCLE, "loyal", "new"): 2,
            (Dimension.LIFECYCLE, "loyal", "at_risk"): 1,
            (Dimension.TRAIT, "efficient", None): 3,
            (Dimension.TRAIT, None, "efficient"): 1,
        }
    )
    stats.actions_by.update(
        {
            ("welcome", None): 4,
            ("promo", "mood"): 2,
            ("promo", "cooldown"): 1,
            ("promo", "no_consent"): 5,
            ("welcome", "held_out"): 3,
        }
    )
    return stats


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_are_the_processors_counts_read_at_scrape_time():
    engine = FakeEngine(_known_stats())
    status, headers, text = get(engine, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = _samples(text)
    # 10 events reached the core: 2 duplicates, 1 the core failed on (dead-lettered), 7 applied
    assert samples["journey_events_total", (("outcome", "applied"),)] == 7
    assert samples["journey_events_total", (("outcome", "duplicate"),)] == 2
    assert samples["journey_events_total", (("outcome", "redelivered"),)] == 3
    assert samples["journey_events_total", (("outcome", "dead_lettered"),)] == 4
    changes = {labels: v for (name, labels), v in samples.items() if name == "journey_type_changes_total"}
    assert changes == {
        (("change", "entered"), ("dimension", "lifecycle"), ("type", "loyal")): 3,
        (("change", "entered"), ("dimension", "trait"), ("type", "efficient")): 3,
        (("change", "cleared"), ("dimension", "trait"), ("type", "efficient")): 1,
    }
    actions = {labels: v for (name, labels), v in samples.items() if name == "journey_actions_total"}
    assert actions == {
        (("action", "welcome"), ("outcome", "sent"), ("reason", "")): 4,
        (("action", "promo"), ("outcome", "suppressed"), ("reason", "mood")): 2,
        (("action", "promo"), ("outcome", "suppressed"), ("reason", "cooldown")): 1,
        (("action", "promo"), ("outcome", "suppressed"), ("reason", "no_consent")): 5,
        (("action", "welcome"), ("outcome", "held_out"), ("reason", "")): 3,
    }
    letters = {
        dict(labels)["reason"]: v for (name, labels), v in samples.items() if name == "journey_dead_letters_total"
    }
    assert letters["invalid_json"] == 1 and letters["too_large"] == 2 and letters["internal_error"] == 1
    assert letters["key_mismatch"] == 0, "every kind of reason is exposed from the start, at 0"
    assert samples["journey_published_messages_total", ()] == 20
    assert samples["journey_redis_round_trips_total", ()] == 7
    assert samples["journey_quarantined_customers_total", ()] == 0  # this Stats has no such counter
    # the gauges the engine refreshed just before
    assert engine.refreshed == 1
    assert samples["journey_consumer_lag_records", (("partition", "0"), ("topic", "in.touchpoints"))] == 3
    assert samples["journey_consumer_lag_records", (("partition", "1"), ("topic", "in.touchpoints"))] == 0
    assert samples["journey_assigned_partitions", ()] == 2
    assert samples["journey_due_customers", ()] == 5
    assert samples["journey_outbox_messages", ()] == 0
    # histograms are there before their first observation
    for name in (
        "journey_batch_duration_seconds",
        "journey_event_to_change_latency_seconds",
        "journey_sweep_duration_seconds",
    ):
        assert samples[f"{name}_count", ()] == 0


def test_a_counter_added_to_stats_later_is_read_when_there():
    stats = _known_stats()
    stats.quarantined = 2  # type: ignore[attr-defined]  # a later Stats may carry it
    _, _, text = get(FakeEngine(stats), "/metrics")
    assert _samples(text)["journey_quarantined_customers_total", ()] == 2


def test_metric_names_follow_prometheus_conventions():
    engine = FakeEngine(_known_stats())
    engine.telemetry.batch_seconds.observe(0.2)
    _, _, text = get(engine, "/metrics")
    families = list(text_string_to_metric_families(text))
    ours = [f for f in families if not f.name.startswith("process_")]
    assert ours and all(f.name.startswith("journey_") and not f.name.startswith("journey_journey") for f in ours)
    for family in ours:
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), f"{family.name}: durations are in seconds"
        for sample in family.samples:
            assert not {"customer", "customer_id", "event_id"} & set(sample.labels), sample


def test_latency_is_observed_from_kafka_timestamps_in_seconds():
    telemetry = Telemetry(Stats)
    telemetry.observe_latencies(1_000.5, [999_000, 1_000_250])  # record timestamps in ms: 1.5 s and 0.25 s
    samples = {s.name: s.value for f in telemetry.registry.collect() for s in f.samples if not s.labels}
    assert samples["journey_event_to_change_latency_seconds_count"] == 2
    assert samples["journey_event_to_change_latency_seconds_sum"] == pytest.approx(1.75)


def test_the_processor_counts_changes_and_actions_by_their_labels():
    """`Processor._emit` fills the labelled counts from what the core decided (Alice's known journey)."""
    from streams.live.processor import Processor, _Pending
    from streams.settings import Settings
    from streams.store import PartitionCommit

    _, _, model, outcomes = alice()
    processor = Processor(Settings(), store=None, publish=None, model=model)  # type: ignore[arg-type]
    for out in outcomes:
        processor._emit(out, _Pending(PartitionCommit(0, None, None, 0.0)))
    changes = Counter({(d.value, to, from_): n for (d, to, from_), n in processor.stats.changes_by.items()})
    assert changes == Counter(
        {
            ("lifecycle", "prospect", None): 1,
            ("lifecycle", "new", "prospect"): 1,
            ("trait", "efficient", None): 1,
            ("lifecycle", "loyal", "new"): 1,
            ("lifecycle", "at_risk", "loyal"): 1,
            ("lifecycle", "loyal", "at_risk"): 1,
        }
    )
    assert processor.stats.actions_by == Counter(
        {
            ("lead_nurture_sequence", None): 1,
            ("welcome_onboarding", None): 1,
            ("concise_options_summary", None): 1,
            ("loyalty_programme_invite", None): 1,
            ("win_back_offer", None): 1,
            ("loyalty_programme_invite", "cooldown"): 1,
        }
    )


def test_held_out_actions_are_published_to_the_holdouts_topic_and_counted():
    """`Processor._emit` puts a held-out action on the holdouts topic (never the actions topic) and counts it."""
    from streams.core import apply_event
    from streams.core.model import Model
    from streams.core.playbook.playbook import Playbook
    from streams.live.processor import Processor, _Pending
    from streams.settings import Settings
    from streams.store import PartitionCommit

    _, _, model, _ = alice()
    spec = model.playbook.spec
    every = {n: a.model_copy(update={"holdout": 1.0}) for n, a in spec.actions.items()}
    held = Model(model.rules, Playbook(spec.model_copy(update={"actions": every})), model.dedupe_window, model.money)
    settings = Settings()
    processor = Processor(settings, store=None, publish=None, model=held)  # type: ignore[arg-type]
    pending = _Pending(PartitionCommit(0, None, None, 0.0))
    processor._emit(apply_event(None, touchpoint("alice", 1, "page_view", 0), held), pending)
    assert [m.topic for m in pending.messages] == [settings.topic_type_changes, settings.topic_holdouts]
    assert json.loads(pending.messages[1].value)["held_out"] is True
    assert processor.stats.held_out == 1 and processor.stats.actions == 0
    assert processor.stats.actions_by == Counter({("lead_nurture_sequence", "held_out"): 1})


# ------------------------------------------------------------------------------------- probes


def test_healthz_is_200_while_making_progress_and_503_with_the_reason_when_stalled():
    engine = FakeEngine()
    assert get(engine, "/healthz")[::2] == (200, {"status": "ok"})
    engine.stalled = "a batch has been in flight for 130s"
    assert get(engine, "/healthz")[::2] == (503, {"status": "stalled", "reason": "a batch has been in flight for 130s"})


def test_readyz_is_503_until_ready_and_when_the_answer_takes_too_long(monkeypatch):
    engine = FakeEngine()
    engine.not_ready = "joining consumer group g"
    assert get(engine, "/readyz")[::2] == (503, {"status": "not_ready", "reason": "joining consumer group g"})
    engine.not_ready = None
    assert get(engine, "/readyz")[::2] == (200, {"status": "ready"})
    monkeypatch.setattr("streams.http.app.READINESS_TIMEOUT_S", 0.05)
    engine.ready_delay = 1.0
    status, _, body = get(engine, "/readyz")
    assert status == 503 and "within" in body["reason"]


# ------------------------------------------------------------------------------------- profile


def test_the_profile_needs_the_token_when_one_is_set():
    engine = FakeEngine(profiles={"alice": _alice_profile()})
    config = HttpConfig(host="0.0.0.0", token=TOKEN)
    answers = call(
        engine,
        config,
        [
            ("GET", "/customers/alice", {}),
            ("GET", "/customers/alice", {"Authorization": "Bearer wrong-token-0123456789"}),
            ("GET", "/customers/alice", {"Authorization": f"Basic {TOKEN}"}),
            ("GET", "/customers/alice", {"Authorization": f"Bearer {TOKEN}"}),
            ("GET", "/customers/nobody", {"Authorization": f"Bearer {TOKEN}"}),
        ],
    )
    for status, headers, body in answers[:3]:
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert "JOURNEY_HTTP_TOKEN" in body["error"] and TOKEN not in body["error"]
    assert answers[3][0] == 200 and answers[3][2] == _alice_profile()
    assert answers[4][::2] == (404, {"error": "no such customer", "customer_id": "nobody"})


def test_without_a_token_the_profile_is_served_on_loopback_only():
    engine = FakeEngine(profiles={"alice": _alice_profile()})
    assert get(engine, "/customers/alice", HttpConfig(host="127.0.0.1"))[0] == 200
    assert get(engine, "/customers/alice", HttpConfig(host="::1"))[0] == 200
    status, _, body = get(engine, "/customers/alice", HttpConfig(host="0.0.0.0"))
    assert status == 403 and "JOURNEY_HTTP_TOKEN" in body["error"]
    # the probes and the metrics stay open wherever it listens
    assert get(engine, "/healthz", HttpConfig(host="0.0.0.0"))[0] == 200
    assert get(engine, "/metrics", HttpConfig(host="0.0.0.0"))[0] == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("worker.example", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_customer_ids_with_slashes_and_spaces_reach_the_engine_decoded():
    engine = FakeEngine(profiles={"shop/42 a": {"customer_id": "shop/42 a"}})
    status, _, body = get(engine, "/customers/shop%2F42%20a")
    assert status == 200 and body == {"customer_id": "shop/42 a"}


def test_a_store_that_cannot_be_read_is_a_503_with_the_reason():
    engine = FakeEngine()
    engine.profile_error = Unavailable("cannot read from Redis at redis://cache:6379/0: Connection refused")
    status, _, body = get(engine, "/customers/alice")
    assert status == 503 and "Connection refused" in body["error"]
    engine.profile_error = RuntimeError("a bug with a secret inside")
    status, _, body = get(engine, "/customers/alice")
    assert status == 500 and "secret" not in body["error"]


def test_unknown_paths_and_methods_answer_json():
    engine = FakeEngine()
    answers = call(engine, HttpConfig(), [("GET", "/nope", {}), ("POST", "/metrics", {})])
    assert answers[0][0] == 404 and "error" in answers[0][2]
    assert answers[1][0] == 405 and "GET" in answers[1][1]["Allow"]


# ------------------------------------------------------------------------------------- serving


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_listens_where_told_and_is_off_on_port_0():
    async def go():
        assert await serve(FakeEngine(), HttpConfig(port=0)) is None
        port = _free_port()
        runner = await serve(FakeEngine(), HttpConfig(port=port))
        assert runner is not None
        try:
            async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            with pytest.raises(ServeError, match=rf"127\.0\.0\.1:{port}.*JOURNEY_HTTP_PORT=0"):
                await serve(FakeEngine(), HttpConfig(port=port))  # taken by the first
        finally:
            await runner.cleanup()

    asyncio.run(go())


# ------------------------------------------------------------------------------------- OpenAPI


@pytest.fixture(scope="module")
def openapi() -> dict:
    return yaml.safe_load(OPENAPI.read_text())


def _validator(openapi: dict, ref: str) -> jsonschema.Draft202012Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; the refs point into the document's components.
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": ref,
        "components": openapi["components"],
    }
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_openapi_lists_exactly_the_routes_the_app_serves(openapi):
    assert openapi["openapi"].startswith("3.1")
    served = {(path, method.lower()) for method, path, _ in Routes(FakeEngine(), HttpConfig()).table()}
    documented = {(path, method) for path, item in openapi["paths"].items() for method in item}
    assert served == documented
    app_paths = {r.resource.canonical for r in make_app(FakeEngine(), HttpConfig()).router.routes()}
    assert app_paths == {path for path, _ in documented}


def test_every_answer_is_documented_and_matches_its_schema(openapi):
    """Each route's answers, every status they can take, validated against the description's schemas."""
    engine = FakeEngine(_known_stats(), profiles={"alice": _alice_profile()})
    answers: list[tuple[str, tuple[int, dict, Any]]] = []
    token = HttpConfig(host="0.0.0.0", token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers.append(("/metrics", get(engine, "/metrics")))
    answers.append(("/healthz", get(engine, "/healthz")))
    answers.append(("/readyz", get(engine, "/readyz")))
    answers.append(("/customers/{customer_id}", get(engine, "/customers/alice", token, **bearer)))
    answers.append(("/customers/{customer_id}", get(engine, "/customers/nobody", token, **bearer)))
    answers.append(("/customers/{customer_id}", get(engine, "/customers/alice", token)))
    answers.append(("/customers/{customer_id}", get(engine, "/customers/alice", HttpConfig(host="0.0.0.0"))))
    engine.stalled, engine.not_ready = "stalled for a test", "not ready for a test"
    answers.append(("/healthz", get(engine, "/healthz")))
    answers.append(("/readyz", get(engine, "/readyz")))
    engine.profile_error = Unavailable("Redis down")
    answers.append(("/customers/{customer_id}", get(engine, "/customers/alice")))
    engine.profile_error = Unavailable("unreadable", status=500)
    answers.append(("/customers/{customer_id}", get(engine, "/customers/alice")))

    seen = set()
    for path, (status, headers, body) in answers:
        responses = openapi["paths"][path]["get"]["responses"]
        assert str(status) in responses, f"{path} answered {status}, which the description does not list"
        content = responses[str(status)]["content"]
        media = headers["Content-Type"].split(";")[0]
        assert media in content, f"{path} {status}: {media} is not documented"
        schema = content[media]["schema"]
        if "$ref" in schema:
            errors = list(_validator(openapi, schema["$ref"]).iter_errors(body))
            assert not errors, f"{path} {status}: " + "; ".join(e.message for e in errors)
        else:
            assert isinstance(body, str) and schema["type"] == "string"
        seen.add((path, str(status)))
    documented = {(path, status) for path, item in openapi["paths"].items() for status in item["get"]["responses"]}
    assert seen == documented, f"documented but never checked: {documented - seen}"


def test_the_profile_schema_is_not_vacuous(openapi):
    validator = _validator(openapi, "#/components/schemas/Profile")
    profile = _alice_profile()
    assert validator.is_valid(profile)
    for broken in (
        {**profile, "lifecycle": "loyal"},
        {**profile, "traits": [{"type": "efficient", "since": "yesterday"}]},
        {**profile, "surprise": 1},
        {k: v for k, v in profile.items() if k != "rules"},
    ):
        assert not validator.is_valid(broken)
