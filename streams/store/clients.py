"""Every Redis client the product builds, made here from the settings (one place for how it connects)."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis


def async_client(settings: Any, **options: Any) -> aioredis.Redis:
    """The asyncio client of the worker, the demo and `advance-clock`."""
    return aioredis.Redis.from_url(settings.redis_dsn, **options)


def sync_client(settings: Any, **options: Any) -> redis.Redis:
    """The blocking client of the one-shot commands (`journey explain`)."""
    return redis.Redis.from_url(settings.redis_dsn, **options)
