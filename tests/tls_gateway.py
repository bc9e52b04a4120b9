"""A TLS (and optionally SASL) gateway in front of a plaintext Kafka broker.

The local broker (Tansu) cannot serve TLS itself, and its SASL accepts no credentials (see
tests/integration/test_kafka_security.py). So the tests put this gateway in front of it and make
the broker advertise the gateway's address: every connection a client makes, bootstrap and
partition leaders alike, is a TLS connection to the gateway, which pipes the plaintext inside
to the broker. It can require client certificates (mutual TLS) and can authenticate SASL PLAIN
and SCRAM itself, as a SASL-terminating proxy does, before it passes anything to the broker.

Written with blocking sockets and one thread per connection: a failed handshake then sends its
TLS alert (what a real broker does, and what tells the client why), and each connection's TLS
object is used by a single thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import select
import socket
import ssl
import struct
import threading
from pathlib import Path

from certs import Issued

HANDSHAKE_TIMEOUT_S = 10.0

# ------------------------------------------------------------------ SASL, as a broker answers it

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
SCRAM_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, size)


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


class SaslServer:
    """The broker's side of SASL PLAIN and SCRAM (RFC 4616, RFC 5802) for one connection."""

    def __init__(self, users: dict[str, str], mechanisms: list[str]) -> None:
        self.users, self.mechanisms = users, mechanisms
        self.mechanism: str | None = None
        self.authenticated: str | None = None
        self._scram: dict[str, object] = {}

    def handshake(self, mechanism: str) -> tuple[int, list[str]]:
        if mechanism not in self.mechanisms:
            return UNSUPPORTED_SASL_MECHANISM, self.mechanisms
        self.mechanism = mechanism
        return 0, self.mechanisms

    def authenticate(self, token: bytes) -> tuple[int, str | None, bytes]:
        """(error code, error message, bytes for the client) for one SaslAuthenticate token."""
        if self.mechanism == "PLAIN":
            _, user, password = token.decode().split("\0")
            if self.users.get(user) != password:
                return SASL_AUTHENTICATION_FAILED, "Authentication failed: Invalid username or password", b""
            self.authenticated = user
            return 0, None, b""
        digest = SCRAM_HASHES[self.mechanism or ""]
        message = token.decode()
        if "client_first_bare" not in self._scram:
            bare = message.split(",", 2)[2]
            attrs = dict(part.split("=", 1) for part in bare.split(","))
            salt, nonce = os.urandom(16), attrs["r"] + base64.b64encode(os.urandom(18)).decode()
            server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
            self._scram.update(client_first_bare=bare, user=attrs["n"], salt=salt, server_first=server_first)
            return 0, None, server_first.encode()
        without_proof, _, proof = message.rpartition(",p=")
        user = str(self._scram["user"])
        auth_message = f"{self._scram['client_first_bare']},{self._scram['server_first']},{without_proof}".encode()
        password = self.users.get(user, "\0not a user")
        salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), self._scram["salt"], 4096)  # type: ignore[arg-type]
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        signature = hmac.new(digest(client_key).digest(), auth_message, digest).digest()
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if user not in self.users or not hmac.compare_digest(expected, base64.b64decode(proof)):
            return (
                SASL_AUTHENTICATION_FAILED,
                f"Authentication failed during authentication due to invalid credentials with SASL mechanism {self.mechanism}",
                b"",
            )
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        self.authenticated = user
        return 0, None, b"v=" + base64.b64encode(hmac.new(server_key, auth_message, digest).digest())


# ------------------------------------------------------------------ the gateway


class TlsGateway:
    """Listens on a loopback port with TLS; pipes each connection, once handshaken (and authenticated), to `target`."""

    def __init__(
        self,
        target_port: int,
        server: Issued,
        client_ca: Path | None = None,
        sasl_users: dict[str, str] | None = None,
        sasl_mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    ) -> None:
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(server.cert, server.key)
        if client_ca is not None:  # mutual TLS: a client without a certificate this CA signed is refused
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        self.sasl_users = sasl_users
        self.sasl_mechanisms = list(sasl_mechanisms)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.tls_connections = 0  # handshakes completed
        self.refused: list[str] = []  # why the others failed
        self.authenticated: list[str] = []  # SASL users let through
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"gateway-{self.port}").start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._open.update(socks)
            return True

    def _serve(self, conn: socket.socket) -> None:
        if not self._track(conn):
            conn.close()
            return
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        tls = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self.refused.append(str(exc))
            self._close_gently(tls)
            return
        with self._lock:
            self.tls_connections += 1
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=HANDSHAKE_TIMEOUT_S)
        except OSError:
            tls.close()
            return
        if not self._track(tls, upstream):
            tls.close()
            upstream.close()
            return
        try:
            if self.sasl_users is None or self._authenticate(tls, upstream):
                self._pipe(tls, upstream)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            for sock in (tls, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.difference_update((tls, upstream, conn))

    @staticmethod
    def _close_gently(conn: socket.socket) -> None:
        """Close after the client has read the TLS alert: closing with its request unread would reset the
        connection, and the reset can overtake the alert."""
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(2.0)
            while conn.recv(65536):
                pass
        conn.close()

    def _authenticate(self, tls: ssl.SSLSocket, upstream: socket.socket) -> bool:
        """Answer SaslHandshake and SaslAuthenticate (v0/v1) itself; pass ApiVersions on; nothing else before."""
        sasl = SaslServer(self.sasl_users or {}, self.sasl_mechanisms)
        while True:
            frame = _read_frame(tls)
            api_key, version, correlation = struct.unpack(">hhi", frame[:8])
            (client_id_len,) = struct.unpack(">h", frame[8:10])
            body = frame[10 + max(client_id_len, 0) :]
            if api_key == API_VERSIONS:
                upstream.sendall(struct.pack(">i", len(frame)) + frame)
                answer = _read_frame(upstream)
                tls.sendall(struct.pack(">i", len(answer)) + answer)
                continue
            if api_key == SASL_HANDSHAKE:
                (length,) = struct.unpack(">h", body[:2])
                error, mechanisms = sasl.handshake(body[2 : 2 + length].decode())
                payload = struct.pack(">h", error) + struct.pack(">i", len(mechanisms))
                payload += b"".join(_string(m) for m in mechanisms)
            elif api_key == SASL_AUTHENTICATE and version in (0, 1):
                (length,) = struct.unpack(">i", body[:4])
                error, message, reply = sasl.authenticate(body[4 : 4 + length])
                payload = struct.pack(">h", error) + _string(message) + struct.pack(">i", len(reply)) + reply
                if version == 1:
                    payload += struct.pack(">q", 0)  # session lifetime: unlimited
            else:
                return False  # anything else before authentication: the connection is dropped, as Kafka does
            answer = struct.pack(">i", correlation) + payload
            tls.sendall(struct.pack(">i", len(answer)) + answer)
            if api_key == SASL_AUTHENTICATE and error:
                return False
            if sasl.authenticated:
                with self._lock:
                    self.authenticated.append(sasl.authenticated)
                return True

    @staticmethod
    def _pipe(tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        """Both directions on this one thread, so the TLS object is never used by two threads at once."""
        tls.setblocking(False)
        upstream.setblocking(False)
        to_upstream, to_client = bytearray(), bytearray()
        while True:
            writers = ([upstream] if to_upstream else []) + ([tls] if to_client else [])
            if tls.pending():
                readable: list[socket.socket] = [tls]
            else:
                readable, _, _ = select.select([tls, upstream], writers, [], 1.0)
            if tls in readable:
                try:
                    data = tls.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    data = None
                if data == b"":
                    return
                if data:
                    to_upstream += data
            if upstream in readable:
                try:
                    data = upstream.recv(65536)
                except BlockingIOError:
                    data = None
                if data == b"":
                    return
                if data:
                    to_client += data
            if to_upstream:
                with contextlib.suppress(BlockingIOError):
                    del to_upstream[: upstream.send(to_upstream)]
            if to_client:
                with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    del to_client[: tls.send(to_client)]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            open_now = list(self._open)
        self.listener.close()
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> TlsGateway:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
