"""How every Kafka client reaches a secured broker, and, when one cannot, why in words an operator can act on.

aiokafka folds every failed bootstrap into "Unable to bootstrap from [...]", whatever the cause:
a broker that is down, a CA that does not match, a password the broker refused. The first passes
by itself, the others never do, and a worker that retries them for ever looks healthy while doing
nothing. So when a client fails to start, one probe connection with the same settings finds out
which it was: a TLS or SASL refusal becomes a `KafkaSetupError` (the worker and the CLI stop on it,
naming the setting to change); anything else stays a retriable `KafkaConnectionError` that now
says what happened.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.settings import Settings

#: How long the probe waits for one broker; it runs only after a client failed to start.
PROBE_TIMEOUT_S = 10.0
#: Larger token files are refused: a token is a few kilobytes at most.
MAX_TOKEN_BYTES = 64 * 1024
#: OpenSSL reasons with which a broker turns down the client's certificate (or the lack of one).
_CLIENT_CERT_REFUSED = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "TLSV1_ALERT_UNKNOWN_CA",
    "TLSV1_ALERT_ACCESS_DENIED",
}
#: `SSLCertVerificationError.verify_code`s of a certificate for another name (X509_V_ERR_HOSTNAME_MISMATCH,
#: X509_V_ERR_IP_ADDRESS_MISMATCH).
_NAME_MISMATCH = {62, 64}


class KafkaSetupError(Exception):
    """Kafka turned the connection down for a reason retrying will not fix; the message says what to change."""


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of every client: the CA file (or the system's CAs), the client certificate, hostname checks.

    Built like `aiokafka.helpers.create_ssl_context` (a default client context), except that the
    hostname check can be turned off, which that helper does not allow.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile is not None:
        password = settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else ""
        # Always a password callback: without one, OpenSSL would prompt on the terminal for an encrypted key.
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile, password=lambda: password)
    if not settings.kafka_ssl_check_hostname:
        context.check_hostname = False
    return context


class TokenFile(AbstractTokenProvider):
    """OAUTHBEARER tokens from a file, read again each time a connection asks for one.

    Whatever fetches and refreshes tokens (a sidecar, a cron job, the platform's projected token)
    writes the file, ideally by an atomic rename; the worker never caches a token, so a refreshed
    file is used from the next connection on. A missing or empty file is retried, not fatal: the
    writer may not have run yet.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        return await asyncio.to_thread(self._read)

    def _read(self) -> str:
        where = f"the OAUTHBEARER token file {self.path} (JOURNEY_KAFKA_SASL_OAUTH_TOKEN_FILE)"
        try:
            with self.path.open("rb") as fh:
                raw = fh.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise KafkaConnectionError(f"cannot read {where}: {exc.strerror or exc}") from None
        if len(raw) > MAX_TOKEN_BYTES:
            raise KafkaConnectionError(f"{where} is larger than {MAX_TOKEN_BYTES} bytes: is it the token?")
        token = raw.decode("utf-8", errors="replace").strip()
        if not token:
            raise KafkaConnectionError(f"{where} is empty")
        return token


def options(settings: Settings) -> dict[str, Any]:
    """The security options of every client (aiokafka's names), from the JOURNEY_KAFKA_* settings."""
    out: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if uses_tls(settings):
        out["ssl_context"] = ssl_context(settings)
    mechanism = settings.kafka_sasl_mechanism
    if mechanism is not None:
        out["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            assert settings.kafka_sasl_oauth_token_file is not None  # the settings check it
            out["sasl_oauth_token_provider"] = TokenFile(settings.kafka_sasl_oauth_token_file)
        else:
            assert settings.kafka_sasl_password is not None  # the settings check it
            out["sasl_plain_username"] = settings.kafka_sasl_username
            out["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return out


@dataclass(frozen=True)
class Problem:
    """Why one broker could not be connected to; `fatal` when only a change of settings (or broker) fixes it."""

    reason: str
    fatal: bool


async def started(settings: Settings, starting: Awaitable[None]) -> None:
    """Await a client's `start()`; if it fails to connect, raise what `diagnose` finds instead of aiokafka's summary."""
    try:
        await starting
    except Exception as exc:
        problem = await diagnose(settings)
        if problem is None:
            raise
        if problem.fatal:
            raise KafkaSetupError(problem.reason) from exc
        raise KafkaConnectionError(problem.reason) from exc


async def diagnose(settings: Settings) -> Problem | None:
    """Connect once to each bootstrap server with these settings: None when one works, else the problem found.

    A fatal problem at any server wins over a passing one at another (a wrong CA is wrong for all).
    """
    problems = []
    for host, port, _ in collect_hosts(settings.kafka_bootstrap, randomize=False):
        problem = await _probe(settings, host, port)
        if problem is None:
            return None
        problems.append(problem)
    if not problems:
        return None
    fatal = [p for p in problems if p.fatal]
    return Problem("; ".join(p.reason for p in (fatal or problems)), bool(fatal))


async def _probe(settings: Settings, host: str, port: int) -> Problem | None:
    conn_options = options(settings)
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **conn_options), PROBE_TIMEOUT_S
        )
    except Exception as exc:
        failure = exc
    else:
        conn.close()
        return None
    offered = None
    if isinstance(failure, UnsupportedSaslMechanismError):
        offered = await _offered_mechanisms(settings, host, port)
    problem = explain(settings, f"{host}:{port}", failure, offered)
    if problem.fatal or (isinstance(failure, OSError) and not isinstance(failure, TimeoutError)):
        return problem  # fatal already, or refused / unreachable: nothing there to ask more
    # A connection closed or left unanswered while being set up: often TLS on one side only.
    if uses_tls(settings):
        if await _answers_plaintext(host, port):
            return Problem(
                f"the broker at {host}:{port} speaks plaintext, not TLS: JOURNEY_KAFKA_SECURITY_PROTOCOL="
                f"{settings.kafka_security_protocol} needs the broker's TLS listener (or use "
                f"{settings.kafka_security_protocol.replace('SSL', 'PLAINTEXT')})",
                fatal=True,
            )
    elif await _speaks_tls(host, port):
        return Problem(
            f"the broker at {host}:{port} expects TLS: set JOURNEY_KAFKA_SECURITY_PROTOCOL="
            f"{'SASL_SSL' if settings.kafka_sasl_mechanism else 'SSL or SASL_SSL'}",
            fatal=True,
        )
    return problem


def explain(settings: Settings, address: str, exc: BaseException, mechanisms: list[str] | None = None) -> Problem:
    """What a failed connection attempt to `address` means, from the exception and the TLS error behind it.

    `mechanisms`: the SASL mechanisms the broker offers, when known (aiokafka does not keep them).
    """
    tls = _tls_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        detail = tls.verify_message or tls.reason or str(tls)
        if tls.verify_code in _NAME_MISMATCH:
            return Problem(
                f"TLS verification failed: the certificate of the broker at {address} is not for that name ({detail}); "
                "connect by a name the certificate holds (JOURNEY_KAFKA_BOOTSTRAP and the broker's advertised "
                "listeners), or, unsafe, set JOURNEY_KAFKA_SSL_CHECK_HOSTNAME=false",
                fatal=True,
            )
        ca = f"the CA file {settings.kafka_ssl_cafile}" if settings.kafka_ssl_cafile else "the system's CAs"
        return Problem(
            f"TLS verification of the certificate of the broker at {address} failed ({detail}) with {ca}: "
            "set JOURNEY_KAFKA_SSL_CAFILE to the CA that signed the broker's certificate",
            fatal=True,
        )
    if isinstance(tls, ssl.SSLError) and not isinstance(tls, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        reason = tls.reason or str(tls)
        if reason in _CLIENT_CERT_REFUSED:
            have = (
                f"the certificate {settings.kafka_ssl_certfile}"
                if settings.kafka_ssl_certfile
                else "no client certificate (JOURNEY_KAFKA_SSL_CERTFILE / JOURNEY_KAFKA_SSL_KEYFILE unset)"
            )
            return Problem(
                f"the broker at {address} refused the TLS handshake ({reason}); it wants a client certificate "
                f"it trusts (mutual TLS), and this client has {have}",
                fatal=True,
            )
        return Problem(f"the TLS handshake with the broker at {address} failed ({reason})", fatal=True)

    mechanism, user = settings.kafka_sasl_mechanism, settings.kafka_sasl_username
    who = (
        f"the OAUTHBEARER token from {settings.kafka_sasl_oauth_token_file}"
        if mechanism == "OAUTHBEARER"
        else f"the {mechanism} credentials of user {user!r}"
    )
    if isinstance(exc, SaslAuthenticationFailed):
        said = _broker_message(exc)
        fix = (
            "check that the token file holds a current token for this cluster"
            if mechanism == "OAUTHBEARER"
            else "check JOURNEY_KAFKA_SASL_USERNAME, JOURNEY_KAFKA_SASL_PASSWORD and JOURNEY_KAFKA_SASL_MECHANISM"
        )
        return Problem(f"the broker at {address} refused {who}{said}: {fix}", fatal=True)
    if isinstance(exc, UnsupportedSaslMechanismError):
        offered = f" (it offers {', '.join(mechanisms)})" if mechanisms else _broker_message(exc)
        return Problem(
            f"the broker at {address} does not offer SASL mechanism {mechanism}{offered}: "
            "set JOURNEY_KAFKA_SASL_MECHANISM to one it offers",
            fatal=True,
        )
    if isinstance(exc, IllegalSaslStateError):
        return Problem(
            f"the broker at {address} did not expect SASL authentication{_broker_message(exc)}: does this listener "
            f"use SASL? JOURNEY_KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol}",
            fatal=True,
        )
    if mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512") and isinstance(exc, KeyError | ValueError):
        # aiokafka's SCRAM client fails this way when the broker's last message is an error (`e=...`)
        # or a server signature that does not match: both mean the password was not accepted.
        return Problem(
            f"the broker at {address} did not accept {who} (the SCRAM exchange ended without the broker's "
            "proof): check JOURNEY_KAFKA_SASL_USERNAME, JOURNEY_KAFKA_SASL_PASSWORD and JOURNEY_KAFKA_SASL_MECHANISM",
            fatal=True,
        )

    if isinstance(exc, TimeoutError):
        return Problem(f"no answer from the broker at {address} within {PROBE_TIMEOUT_S:.0f}s", fatal=False)
    if isinstance(exc, KafkaConnectionError):
        text = str(exc).removeprefix("KafkaConnectionError: ")
        if text.startswith(f"Connection at {address} closed"):
            text = f"the broker at {address} closed the connection while it was being set up"
            hints = []
            if uses_tls(settings):
                hints.append("they want a client certificate (JOURNEY_KAFKA_SSL_CERTFILE / JOURNEY_KAFKA_SSL_KEYFILE)")
            if mechanism is not None:
                hints.append(f"they do not offer SASL mechanism {mechanism} (JOURNEY_KAFKA_SASL_MECHANISM)")
            if hints:
                text += f"; some brokers do this when {', or when '.join(hints)}"
        return Problem(text, fatal=False)
    if isinstance(exc, OSError):
        return Problem(f"cannot connect to the broker at {address}: {exc.strerror or exc}", fatal=False)
    return Problem(f"connecting to the broker at {address} failed: {type(exc).__name__}: {exc}", fatal=False)


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc`, if any: aiokafka raises some as they are and wraps others in its own errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _broker_message(exc: BaseException) -> str:
    """What the broker said with an error response, as ` (…)`; nothing when it said nothing useful."""
    text = str(exc)
    for generic in (f"[Error {getattr(exc, 'errno', '')}] {type(exc).__name__}", type(exc).__name__):
        text = text.removeprefix(generic).lstrip(": ")
    description = getattr(exc, "description", "")
    # aiokafka passes some errors the connection instead of the broker's message: not worth showing.
    return f" ({text})" if text and text not in (description, "None") and not text.startswith("<") else ""


async def _speaks_tls(host: str, port: int) -> bool:
    """True when `host:port` answers a TLS handshake (certificate unchecked: this is only a question)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), PROBE_TIMEOUT_S)
    except ssl.SSLError as exc:  # an alert is a TLS answer too; a bare close is not
        return not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    except OSError:  # refused, unreachable, or no answer in time
        return False
    writer.close()
    return True


async def _answers_plaintext(host: str, port: int) -> bool:
    """True when `host:port` answers a plaintext Kafka request (ApiVersions)."""
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000)), PROBE_TIMEOUT_S
        )
    except Exception:
        return False
    conn.close()
    return True


async def _offered_mechanisms(settings: Settings, host: str, port: int) -> list[str] | None:
    """The SASL mechanisms `host:port` offers, from a SaslHandshake request of our own; None when it will not say.

    Written out by hand (request header v1, SaslHandshake v1): aiokafka drops the list when the
    broker answers with an error, and its protocol classes differ between its versions.
    """
    mechanism = (settings.kafka_sasl_mechanism or "PLAIN").encode()
    client_id = b"journey-probe"
    request = struct.pack(">hhih", 17, 1, 1, len(client_id)) + client_id + struct.pack(">h", len(mechanism)) + mechanism
    tls = ssl_context(settings) if uses_tls(settings) else None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=tls), PROBE_TIMEOUT_S)
    except (OSError, ssl.SSLError):
        return None
    try:
        writer.write(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), PROBE_TIMEOUT_S))
        body = await asyncio.wait_for(reader.readexactly(min(size, 64 * 1024)), PROBE_TIMEOUT_S)
        _, _, count = struct.unpack(">ihi", body[:10])
        offered, at = [], 10
        for _ in range(min(count, 64)):
            (length,) = struct.unpack(">h", body[at : at + 2])
            offered.append(body[at + 2 : at + 2 + length].decode("utf-8", errors="replace"))
            at += 2 + length
        return offered or None
    except (OSError, asyncio.IncompleteReadError, struct.error, ssl.SSLError):
        return None
    finally:
        writer.close()
