"""The routes of the worker's HTTP endpoint, served by aiohttp inside the worker's own event loop.

    GET /metrics                  Prometheus text format (`streams/http/metrics.py`)
    GET /healthz                  200 while the engine makes progress, 503 with the reason when stalled
    GET /readyz                   200 once connected to Kafka and Redis and in the consumer group, else 503
    GET /customers/{customer_id}  the customer's profile as JSON (`streams/profile.py`)

`streams/http/openapi.yaml` describes them; a test holds the two in step. Every answer but the
metrics is JSON, errors included (`{"error": ...}`).

The profile route tells what a customer is and did: it requires `Authorization: Bearer
<JOURNEY_HTTP_TOKEN>`. Without a token set it is served only when the endpoint listens on a
loopback address (only this host can ask); listening anywhere else, it answers 403 until a
token is set. The other routes carry no customer data and take no token, as probes and scrapers expect.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from streams.http.engine import Engine, Unavailable
from streams.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Longest a probe, a scrape or a profile waits on Kafka or Redis before answering without them.
READINESS_TIMEOUT_S = 2.0
REFRESH_TIMEOUT_S = 2.0
PROFILE_TIMEOUT_S = 5.0
JSON_TYPE = "application/json"


class ServeError(RuntimeError):
    """The endpoint cannot listen where the settings say; the message says what to change."""


def is_loopback(host: str) -> bool:
    """Whether an address to listen on only takes connections from this host."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


@dataclass(frozen=True)
class HttpConfig:
    """Where the endpoint listens and the profile route's token."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpConfig:
        token = settings.http_token.get_secret_value() if settings.http_token is not None else None
        return cls(settings.http_host, settings.http_port, token)


def _json(code: int, /, **body: object) -> web.Response:
    return web.json_response(body, status=code)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class Routes:
    """The handlers, bound to one engine and one configuration."""

    def __init__(self, engine: Engine, config: HttpConfig) -> None:
        self.engine = engine
        self.config = config
        self._token = None if config.token is None else _digest(config.token)

    def table(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) of every route: what another web server mounts to serve the same routes."""
        return [
            ("GET", "/metrics", self.metrics),
            ("GET", "/healthz", self.healthz),
            ("GET", "/readyz", self.readyz),
            ("GET", "/customers/{customer_id}", self.customer),
        ]

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.engine.refresh(), REFRESH_TIMEOUT_S)
        except Exception as exc:  # the counters are still worth serving; the gauges keep their last values
            log.warning(
                "refreshing the lag and backlog gauges failed (served as last known): %s", exc or type(exc).__name__
            )
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.engine.telemetry.registry), headers={"Content-Type": content_type})

    async def healthz(self, request: web.Request) -> web.Response:
        reason = self.engine.liveness()
        if reason is None:
            return _json(200, status="ok")
        return _json(503, status="stalled", reason=reason)

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            reason = await asyncio.wait_for(self.engine.readiness(), READINESS_TIMEOUT_S)
        except TimeoutError:
            reason = f"no answer from Kafka or Redis within {READINESS_TIMEOUT_S:g}s"
        if reason is None:
            return _json(200, status="ready")
        return _json(503, status="not_ready", reason=reason)

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Why this request may not read a profile, as the answer to give; None when it may."""
        if self._token is None:
            if is_loopback(self.config.host):
                return None
            return _json(
                403,
                error="the profile route is off: this endpoint listens on a non-loopback address "
                f"({self.config.host}) and JOURNEY_HTTP_TOKEN is not set; set it to serve profiles",
            )
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(_digest(given.strip()), self._token):
            return None
        response = _json(401, error="send the profile route's token: Authorization: Bearer <JOURNEY_HTTP_TOKEN>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="journey"'
        return response

    async def customer(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        customer_id = request.match_info["customer_id"]
        try:
            profile = await asyncio.wait_for(self.engine.profile(customer_id), PROFILE_TIMEOUT_S)
        except Unavailable as exc:
            return _json(exc.status, error=str(exc))
        except TimeoutError:
            return _json(503, error=f"the state store did not answer within {PROFILE_TIMEOUT_S:g}s")
        if profile is None:
            return _json(404, error="no such customer", customer_id=customer_id)
        return web.json_response(profile)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method) and unexpected failures, as JSON like the rest."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json(exc.status, error=exc.reason)
        for name in ("Allow", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the HTTP route %s failed", request.path)
        return _json(500, error="internal error; the worker's log has the details")


def make_app(engine: Engine, config: HttpConfig) -> web.Application:
    app = web.Application(middlewares=[_json_errors])
    for method, path, handler in Routes(engine, config).table():
        app.router.add_route(method, path, handler)
    return app


async def serve(engine: Engine, config: HttpConfig) -> web.AppRunner | None:
    """Start listening (None when the port is 0: the endpoint is off); `await runner.cleanup()` stops it."""
    if config.port == 0:
        return None
    # No access log: probes and scrapes every few seconds would drown the worker's own lines.
    runner = web.AppRunner(make_app(engine, config), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ServeError(
            f"cannot listen on {config.host}:{config.port} for metrics and probes ({exc.strerror or exc}); "
            "set JOURNEY_HTTP_HOST / JOURNEY_HTTP_PORT to a free address, or JOURNEY_HTTP_PORT=0 to turn the endpoint off"
        ) from None
    log_listening(config)
    return runner


def log_listening(config: HttpConfig) -> None:
    """Say where the endpoint listens and who may read profiles (both engines, once listening)."""
    log.info(
        "HTTP endpoint on %s:%d: /metrics /healthz /readyz /customers/{id} (%s)",
        config.host,
        config.port,
        "token required"
        if config.token
        else "profiles on loopback only"
        if is_loopback(config.host)
        else "profiles off: no JOURNEY_HTTP_TOKEN",
    )
