"""Kafka security settings: what combinations start, what every client is built with, and how failures read.

No broker here (tests/integration/test_kafka_security.py has them on the wire).
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from certs import CertificateAuthority
from click.testing import CliRunner
from pydantic import ValidationError

from streams.cli import main
from streams.kafka import clients
from streams.kafka.security import TokenFile, explain
from streams.logs import SafeLogFilter
from streams.settings import Settings

PASSWORD = "sasl-Passw0rd-42"
KEY_PASSWORD = "key-passphrase-42"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("client", client=True), ca.issue("locked", client=True, password=KEY_PASSWORD.encode())


def sasl(mechanism: str = "SCRAM-SHA-512", **more) -> dict:
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": "journey",
        "kafka_sasl_password": PASSWORD,
        **more,
    }


# ------------------------------------------------------------------ which settings start


def test_the_default_is_plaintext_and_needs_nothing():
    assert clients.connection(Settings(kafka_bootstrap="b:9092")) == {
        "bootstrap_servers": "b:9092",
        "security_protocol": "PLAINTEXT",
    }


def refusal(**values) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    return "\n".join(error["msg"] for error in caught.value.errors())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "JOURNEY_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs JOURNEY_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
            "JOURNEY_KAFKA_SASL_MECHANISM=PLAIN needs JOURNEY_KAFKA_SASL_USERNAME and JOURNEY_KAFKA_SASL_PASSWORD",
        ),
        (
            sasl(kafka_sasl_password=None),
            "JOURNEY_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 needs JOURNEY_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
            "JOURNEY_KAFKA_SASL_MECHANISM, JOURNEY_KAFKA_SASL_USERNAME, JOURNEY_KAFKA_SASL_PASSWORD set, but "
            "JOURNEY_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
            "JOURNEY_KAFKA_SASL_MECHANISM=OAUTHBEARER needs JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE",
        ),
        (
            sasl("OAUTHBEARER", kafka_sasl_oauth_token_file="/run/token"),
            "OAUTHBEARER authenticates with the token file, not JOURNEY_KAFKA_SASL_USERNAME / _PASSWORD",
        ),
        (
            sasl(kafka_sasl_oauth_token_file="/run/token"),
            "JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE is only used with OAUTHBEARER, not SCRAM-SHA-512",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nowhere/ca.pem"},
            "JOURNEY_KAFKA_SSL_CAFILE: no such file: /nowhere/ca.pem",
        ),
        (
            {**sasl(), "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_cafile": "/nowhere/ca.pem"},
            "JOURNEY_KAFKA_SSL_CAFILE set, but JOURNEY_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
    ],
)
def test_combinations_that_cannot_work_are_refused_naming_the_variables(values, message):
    assert message in refusal(**values)


def test_client_certificate_files_are_checked_at_start_up(pki, tmp_path):
    ca, client, locked = pki
    other = CertificateAuthority(tmp_path, name="other").issue("other", client=True)
    tls = {"kafka_security_protocol": "SSL"}
    assert "JOURNEY_KAFKA_SSL_CERTFILE needs JOURNEY_KAFKA_SSL_KEYFILE (its private key)" in refusal(
        **tls, kafka_ssl_certfile=client.cert
    )
    assert "JOURNEY_KAFKA_SSL_KEYFILE set without JOURNEY_KAFKA_SSL_CERTFILE" in refusal(
        **tls, kafka_ssl_keyfile=client.key
    )
    assert "the key is not the certificate's" in refusal(
        **tls, kafka_ssl_certfile=client.cert, kafka_ssl_keyfile=other.key
    )
    assert "the key is encrypted: JOURNEY_KAFKA_SSL_KEY_PASSWORD is missing or wrong" in refusal(
        **tls, kafka_ssl_certfile=locked.cert, kafka_ssl_keyfile=locked.key
    )
    assert "the key is encrypted" in refusal(
        **tls, kafka_ssl_certfile=locked.cert, kafka_ssl_keyfile=locked.key, kafka_ssl_key_password="wrong"
    )
    assert "JOURNEY_KAFKA_SSL_CAFILE: " in refusal(**tls, kafka_ssl_cafile=client.key)  # a key, not a certificate
    both = tmp_path / "both.pem"
    both.write_bytes(client.cert.read_bytes() + client.key.read_bytes())
    Settings(**tls, kafka_ssl_certfile=both)  # one file with certificate and key is fine
    Settings(**tls, kafka_ssl_cafile=ca.cert, kafka_ssl_certfile=locked.cert, kafka_ssl_keyfile=locked.key,
             kafka_ssl_key_password=KEY_PASSWORD)  # fmt: skip


def test_empty_values_mean_unset_and_choices_ignore_case(monkeypatch):
    monkeypatch.setenv("JOURNEY_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("JOURNEY_KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("JOURNEY_KAFKA_SASL_USERNAME", "journey")
    monkeypatch.setenv("JOURNEY_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("JOURNEY_KAFKA_SSL_CAFILE", "")
    monkeypatch.setenv("JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE", " ")
    settings = Settings()
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert settings.kafka_ssl_cafile is None and settings.kafka_sasl_oauth_token_file is None
    monkeypatch.setenv("JOURNEY_KAFKA_SECURITY_PROTOCOL", "")
    for name in ("MECHANISM", "USERNAME", "PASSWORD"):
        monkeypatch.setenv(f"JOURNEY_KAFKA_SASL_{name}", "")
    assert Settings().kafka_security_protocol == "PLAINTEXT"


def test_a_command_with_inconsistent_settings_says_which_without_a_traceback():
    result = CliRunner().invoke(
        main, ["topics"], env={"JOURNEY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "JOURNEY_KAFKA_SASL_MECHANISM": ""}
    )
    assert result.exit_code == 2
    assert result.output.startswith("JOURNEY_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs JOURNEY_KAFKA_SASL_MECHANISM")


# ------------------------------------------------------------------ what the clients get


def test_tls_clients_verify_the_broker_by_the_ca_file_and_its_name(pki):
    ca, _, locked = pki
    options = clients.connection(
        Settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=ca.cert,
            kafka_ssl_certfile=locked.cert,
            kafka_ssl_keyfile=locked.key,
            kafka_ssl_key_password=KEY_PASSWORD,
        )
    )
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "journey test CA"),),)]
    unchecked = clients.connection(Settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False))
    assert not unchecked["ssl_context"].check_hostname
    assert unchecked["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the chain is still verified


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_clients_get_the_mechanism_user_and_password(mechanism):
    options = clients.connection(Settings(**sasl(mechanism)))
    assert options["security_protocol"] == "SASL_SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        mechanism,
        "journey",
        PASSWORD,
    )
    plaintext = clients.connection(Settings(**sasl(mechanism, kafka_security_protocol="SASL_PLAINTEXT")))
    assert "ssl_context" not in plaintext


def test_every_client_kind_is_built_with_the_security_options():
    async def build():
        settings = Settings(**sasl("PLAIN"))
        built = [clients.producer(settings), clients.consumer(settings, "t"), clients.admin(settings)]
        # aiokafka's own client inside each (the producer calls it `client`, the others `_client`)
        return [getattr(c, "_client", None) or c.client for c in built]

    for client in asyncio.run(build()):
        assert client._security_protocol == "SASL_SSL" and client._sasl_mechanism == "PLAIN"
        assert client._sasl_plain_password == PASSWORD and client._ssl_context is not None


def test_oauthbearer_reads_the_token_file_for_every_token(tmp_path):
    token_file = tmp_path / "token"
    settings = Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER", kafka_sasl_oauth_token_file=token_file
    )
    provider = clients.connection(settings)["sasl_oauth_token_provider"]
    assert isinstance(provider, TokenFile)

    with pytest.raises(KafkaConnectionError, match=f"cannot read the OAUTHBEARER token file {token_file}"):
        asyncio.run(provider.token())
    token_file.write_text("")
    with pytest.raises(KafkaConnectionError, match="JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE\\) is empty"):
        asyncio.run(provider.token())
    token_file.write_text("first.token.value\n")
    assert asyncio.run(provider.token()) == "first.token.value"
    token_file.write_text("refreshed.token.value")  # a sidecar refreshed it
    assert asyncio.run(provider.token()) == "refreshed.token.value"
    token_file.write_bytes(b"x" * 70_000)
    with pytest.raises(KafkaConnectionError, match="is larger than"):
        asyncio.run(provider.token())


# ------------------------------------------------------------------ secrets


def test_sasl_and_key_passwords_are_secrets_kept_out_of_logs(pki):
    _, _, locked = pki
    settings = Settings(
        **sasl(),
        kafka_ssl_certfile=locked.cert,
        kafka_ssl_keyfile=locked.key,
        kafka_ssl_key_password=KEY_PASSWORD,
    )
    assert {PASSWORD, KEY_PASSWORD} <= set(settings.secrets())
    assert PASSWORD not in repr(settings) and KEY_PASSWORD not in repr(settings)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SafeLogFilter(settings.secrets()))
    log = logging.getLogger("test.kafka-secrets")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("login with %s / %s failed", PASSWORD, KEY_PASSWORD)
    finally:
        log.removeHandler(handler)
    assert PASSWORD not in stream.getvalue() and KEY_PASSWORD not in stream.getvalue()
    assert "login with *** / *** failed" in stream.getvalue()


# ------------------------------------------------------------------ how failures read


def _verification_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    return error


def test_tls_verification_failures_are_fatal_and_name_the_setting(pki):
    ca, _, _ = pki
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca.cert)
    wrong_ca = explain(settings, "b:9093", _verification_error(20, "unable to get local issuer certificate"))
    assert wrong_ca.fatal
    assert wrong_ca.reason == (
        "TLS verification of the certificate of the broker at b:9093 failed (unable to get local issuer certificate) "
        f"with the CA file {ca.cert}: set JOURNEY_KAFKA_SSL_CAFILE to the CA that signed the broker's certificate"
    )
    other_name = explain(settings, "b:9093", _verification_error(62, "Hostname mismatch"))
    assert other_name.fatal and "is not for that name (Hostname mismatch)" in other_name.reason
    assert "JOURNEY_KAFKA_SSL_CHECK_HOSTNAME=false" in other_name.reason
    # aiokafka wraps an alert read after the handshake in its own error: the alert is still found
    wrapped = KafkaConnectionError("Connection at b:9093 closed")
    wrapped.__cause__ = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    wrapped.__cause__.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    mutual = explain(settings, "b:9093", wrapped)
    assert mutual.fatal and "wants a client certificate it trusts (mutual TLS)" in mutual.reason


def test_refused_credentials_are_fatal_other_failures_are_retried():
    settings = Settings(**sasl())
    refused = explain(settings, "b:9096", SaslAuthenticationFailed("Authentication failed: invalid credentials"))
    assert refused.fatal
    assert refused.reason.startswith(
        "the broker at b:9096 refused the SCRAM-SHA-512 credentials of user 'journey' "
        "(Authentication failed: invalid credentials): check JOURNEY_KAFKA_SASL_USERNAME"
    )
    assert PASSWORD not in refused.reason
    scram = explain(settings, "b:9096", KeyError("v"))  # aiokafka's SCRAM client on an `e=` final message
    assert scram.fatal and "did not accept the SCRAM-SHA-512 credentials of user 'journey'" in scram.reason
    down = explain(settings, "b:9096", ConnectionRefusedError(111, "Connection refused"))
    assert not down.fatal and down.reason == "cannot connect to the broker at b:9096: Connection refused"
    assert not explain(settings, "b:9096", TimeoutError()).fatal


def test_a_token_file_problem_is_retried_with_its_reason(tmp_path: Path):
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauth_token_file=tmp_path / "token",
    )
    problem = explain(settings, "b:9096", KafkaConnectionError(f"cannot read the token file {tmp_path / 'token'}"))
    assert not problem.fatal and problem.reason == f"cannot read the token file {tmp_path / 'token'}"
    refused = explain(settings, "b:9096", SaslAuthenticationFailed())
    assert refused.fatal
    assert refused.reason == (
        f"the broker at b:9096 refused the OAUTHBEARER token from {tmp_path / 'token'}: "
        "check that the token file holds a current token for this cluster"
    )


def test_a_connection_closed_while_being_set_up_is_retried_with_what_may_cause_it():
    closed = explain(Settings(**sasl("PLAIN")), "b:9096", KafkaConnectionError("Connection at b:9096 closed"))
    assert not closed.fatal
    assert closed.reason == (
        "the broker at b:9096 closed the connection while it was being set up; some brokers do this when they want "
        "a client certificate (JOURNEY_KAFKA_SSL_CERTFILE / JOURNEY_KAFKA_SSL_KEYFILE), or when they do not offer "
        "SASL mechanism PLAIN (JOURNEY_KAFKA_SASL_MECHANISM)"
    )
    plain = explain(Settings(), "b:9092", KafkaConnectionError("Connection at b:9092 closed"))
    assert plain.reason == "the broker at b:9092 closed the connection while it was being set up"


def test_replay_to_kafka_with_inconsistent_settings_says_which_without_a_traceback(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id":"e1","customer_id":"c1","occurred_at":"2026-01-01T00:00:00Z","stage":"awareness",'
        '"touchpoint":"page_view","channel":"web"}\n'
    )
    result = CliRunner().invoke(
        main,
        ["replay", str(events), "--to-kafka"],
        env={"JOURNEY_KAFKA_SECURITY_PROTOCOL": "SSL", "JOURNEY_KAFKA_SSL_CAFILE": str(tmp_path / "missing.pem")},
    )
    assert result.exit_code == 2, result.output
    assert f"JOURNEY_KAFKA_SSL_CAFILE: no such file: {tmp_path / 'missing.pem'}" in result.output
