"""Every Redis client the product builds, made here from the settings (one place for how it connects).

TLS comes with a `rediss://` URL; the CA, client certificate and key files are settings. User
name and password (Redis ACLs) are part of the URL, which the settings hold as a secret.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from streams.settings import Settings


def connection(settings: Settings) -> dict[str, Any]:
    """The options every client of these settings connects with (besides the URL)."""
    if not settings.redis_dsn.startswith("rediss://"):
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": settings.redis_ssl_check_hostname}
    if settings.redis_ssl_cafile:
        options["ssl_ca_certs"] = str(settings.redis_ssl_cafile)
    if settings.redis_ssl_certfile:
        options["ssl_certfile"] = str(settings.redis_ssl_certfile)
        options["ssl_keyfile"] = str(settings.redis_ssl_keyfile)
    return options


def async_client(settings: Settings, **options: Any) -> aioredis.Redis:
    """The asyncio client of the worker, the demo and `advance-clock`."""
    return aioredis.Redis.from_url(settings.redis_dsn, **connection(settings), **options)


def sync_client(settings: Settings, **options: Any) -> redis.Redis:
    """The blocking client of the one-shot commands (`journey explain`)."""
    return redis.Redis.from_url(settings.redis_dsn, **connection(settings), **options)
