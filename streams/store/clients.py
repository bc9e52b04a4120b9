"""Every Redis client the product builds, made here from the settings (one place for how it connects).

TLS comes with a `rediss://` URL; the CA, client certificate and key files are settings. User
name and password (Redis ACLs) are part of the URL, which the settings hold as a secret. With
`JOURNEY_REDIS_CLUSTER=true` the URL names one node of a Redis Cluster and every client is redis-py's
cluster client, which discovers the others and sends each command to the node of its key's slot.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster

from streams.settings import Settings

#: The asyncio client, of one server or of a cluster: both take the store's commands.
AsyncClient = aioredis.Redis | aiocluster.RedisCluster
SyncClient = redis.Redis | redis.cluster.RedisCluster


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


def async_client(settings: Settings, **options: Any) -> AsyncClient:
    """The asyncio client of the worker, the demo and `advance-clock` (`AsyncClient`)."""
    if settings.redis_cluster:
        return aiocluster.RedisCluster.from_url(settings.redis_dsn, **connection(settings), **options)
    return aioredis.Redis.from_url(settings.redis_dsn, **connection(settings), **options)


def sync_client(settings: Settings, **options: Any) -> SyncClient:
    """The blocking client of the one-shot commands (`journey explain`, `SyncClient`)."""
    if settings.redis_cluster:
        return redis.cluster.RedisCluster.from_url(settings.redis_dsn, **connection(settings), **options)
    return redis.Redis.from_url(settings.redis_dsn, **connection(settings), **options)


def sync_client_for_url(url: str, cluster: bool) -> SyncClient:
    """A blocking client of a URL given on the command line (`journey replay --redis`)."""
    return redis.cluster.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
