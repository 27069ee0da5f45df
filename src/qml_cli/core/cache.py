"""Redis connections for cache and rate limits, with clear errors when unreachable."""

from __future__ import annotations

from functools import lru_cache

from qml_cli.errors import InvalidInput, ServiceUnavailable


@lru_cache(maxsize=4)
def redis_client(url: str):
    import redis

    try:
        return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    except ValueError as exc:
        raise InvalidInput(
            f"invalid REDIS_URL: {exc}.",
            hint="Use redis://host:6379/0 or rediss:// for TLS.",
        ) from None


def ping_redis(url: str) -> float:
    """Ping Redis and return the round trip in milliseconds."""
    import time

    import redis

    from qml_cli.core.config_check import display_value

    client = redis_client(url)
    started = time.perf_counter()
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ServiceUnavailable(
            f"Redis unreachable at {display_value('REDIS_URL', url)}: {exc}",
            hint="Check REDIS_URL and that Redis is running.",
        ) from None
    return (time.perf_counter() - started) * 1000


def get_redis():
    """Return the configured Redis client, or None when REDIS_URL is unset."""
    from qml_cli.core.settings import get_settings

    url = get_settings().values.get("REDIS_URL")
    return redis_client(url) if url else None
