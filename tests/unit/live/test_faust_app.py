"""The Faust app's configuration: faust's clients connect as ours do, with the same timeouts and buffers."""

from __future__ import annotations

import asyncio
import ssl
import sys

import pytest
from click.testing import CliRunner
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP

from streams.cli import main
from streams.kafka import security
from streams.live.faust_app import _ReadOffsets, app_options, create_app, credentials
from streams.settings import Settings

PASSWORD = "sasl-Passw0rd-42"


def comparable(options: dict) -> dict:
    """The options with the TLS context replaced by what it checks (contexts compare by identity)."""
    out = dict(options)
    context = out.pop("ssl_context", None)
    if context is not None:
        assert isinstance(context, ssl.SSLContext)
        out["tls"] = (context.check_hostname, context.verify_mode)
    provider = out.pop("sasl_oauth_token_provider", None)
    if provider is not None:
        out["token_file"] = str(provider.path)
    out.pop("sasl_kerberos_service_name", None)
    out.pop("sasl_kerberos_domain_name", None)
    return out


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"kafka_security_protocol": "SSL"},
        {"kafka_security_protocol": "SSL", "kafka_ssl_check_hostname": False},
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "journey",
            "kafka_sasl_password": PASSWORD,
        },
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": "journey",
            "kafka_sasl_password": PASSWORD,
        },
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "kafka_sasl_oauth_token_file": "/run/token",
        },
    ],
)
def test_faust_connects_with_the_security_options_of_every_other_client(values):
    settings = Settings(kafka_bootstrap="b:9092", **values)
    faust_side = credentials_to_aiokafka_auth(credentials(settings))
    assert comparable(dict(faust_side)) == comparable(security.options(settings))


def test_the_app_takes_the_group_timeouts_buffers_and_endpoint_from_the_settings():
    settings = Settings(
        kafka_bootstrap="k1:9092, k2:9093",
        consumer_group="g",
        session_timeout_s=4,
        heartbeat_interval_s=0.5,
        batch_size=500,
        http_port=0,
    )
    options = app_options(settings)
    assert options["broker"] == ["kafka://k1:9092", "kafka://k2:9093"]
    assert (options["broker_session_timeout"], options["broker_heartbeat_interval"]) == (4, 0.5)
    assert options["broker_rebalance_timeout"] == 4  # Tansu holds a join for half of it
    assert options["broker_max_poll_records"] == 500
    # several batches buffered, so that taking one does not pause fetching (faust pauses at 4/5 full)
    assert options["stream_buffer_maxsize"] == 8 * 500
    assert options["web_enabled"] is False

    app = create_app(Settings(consumer_group="g2", http_port=18099, batch_size=300))
    assert app.conf.id == "g2" and app.conf.broker_session_timeout == 30
    assert app.conf.stream_buffer_maxsize == 8 * 300 and app.conf.web_port == 18099
    agent = next(iter(app.agents.values()))  # the input topic, raw bytes
    assert agent.channel.get_topic_name() == "journey.touchpoints"


def test_the_faust_engine_says_what_to_install_when_faust_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "faust", None)  # `import faust` then raises ImportError
    result = CliRunner().invoke(main, ["worker", "--engine", "faust"], env={"JOURNEY_HTTP_PORT": "0"})
    assert result.exit_code == 2
    assert "pip install 'journey-streams[faust]'" in result.output


def test_a_held_read_offset_does_not_move_past_the_sought_back_position():
    """faust drops records below a partition's read offset: while the worker waits for the record it sought
    back to, records of an older fetch must not move that offset past it (then the records read again
    would be dropped, and the wait would never end)."""
    held, other = TP("in", 0), TP("in", 1)
    offsets = _ReadOffsets()
    offsets[held] = 900  # where faust had read to before the seek
    offsets.held[held] = 500  # sought back to 500
    offsets[held] = 500  # the seek itself
    offsets[held] = 901  # a record of the fetch made before the seek, delivered after it
    offsets[other] = 42
    assert (offsets[held], offsets[other]) == (500, 42)
    offsets[held] = 499  # below the held position: faust's own rewinds still move it
    assert offsets[held] == 499
    del offsets.held[held]  # the record at 500 arrived
    offsets[held] = 501
    assert offsets[held] == 501
    assert offsets[TP("in", 2)] is None  # as faust's own: unknown partitions read from anywhere


def test_the_consumer_fetches_wait_no_longer_than_a_batch_may():
    """faust writes a 1,500 ms fetch wait into its aiokafka consumer; a broker holds an empty fetch for (a part
    of) it, which delayed each record arriving after the worker caught up. The engine's waits `within`."""

    async def fetch_wait_ms(app) -> int:  # aiokafka makes its consumer inside a running loop
        thread = app.consumer._new_consumer_thread()
        return thread._create_worker_consumer(app.transport)._fetch_max_wait_ms

    assert asyncio.run(fetch_wait_ms(create_app(Settings(consumer_group="g3", http_port=0, batch_within_s=0.04)))) == 40
    plain = create_app(Settings(consumer_group="g4", http_port=0))
    plain.journey = None  # an app without the engine's worker: faust's own wait stays
    assert asyncio.run(fetch_wait_ms(plain)) == 1500


def test_the_sweep_seeks_a_partition_back_only_between_applies(monkeypatch):
    """A seek back made while a batch was being applied let that batch (already past the re-read filter)
    land right after the new mark, over the gap read again: the sweep's seek waits for the apply."""
    from types import SimpleNamespace

    from streams.live import faust_app

    order: list[str] = []
    gate = asyncio.Event()

    async def slow_apply(processor, messages) -> None:
        order.append("apply starts")
        await gate.wait()
        order.append("apply ends")

    async def sweep_finding_a_mark_gone_back(partitions) -> int:
        worker.processor.rewound.add(0)
        return 0

    async def seek() -> None:  # as `_seek_rewound`: nothing to do once the partitions were sought
        if worker.processor.rewound:
            order.append("seek")
            worker.processor.rewound.clear()

    worker = create_app(Settings(consumer_group="g5", http_port=0)).journey
    monkeypatch.setattr(faust_app, "process_until_done", slow_apply)
    monkeypatch.setattr(worker.processor, "sweep", sweep_finding_a_mark_gone_back)
    monkeypatch.setattr(worker, "_seek_rewound", seek)
    monkeypatch.setattr(worker, "owned", lambda: [0])
    event = SimpleNamespace(message=SimpleNamespace(partition=0, offset=7, timestamp=None))

    async def main() -> None:
        applying = asyncio.create_task(worker.apply([event]))
        await asyncio.sleep(0)
        sweeping = asyncio.create_task(worker.sweep())
        for _ in range(20):
            await asyncio.sleep(0)
        assert order == ["apply starts"], order  # the sweep found the mark gone back, but waits to seek
        gate.set()
        await asyncio.gather(applying, sweeping)

    asyncio.run(main())
    assert order == ["apply starts", "apply ends", "seek"]
