"""Connecting to Redis as the configuration says: AUTH from the URL (its password from the
environment through ``${VAR}``), TLS for ``rediss://`` URLs checked against ``[redis] tls_ca``,
and an operator's error (never the password) when Redis refuses the login."""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from common.config import Config, ConfigError


def redis_client(cfg: Config) -> Redis:
    """A client for the configured Redis (no I/O yet)."""
    ca = cfg.redis.tls_ca
    if ca is None:
        return Redis.from_url(cfg.redis_url, decode_responses=True)
    return Redis.from_url(cfg.redis_url, decode_responses=True,
                          ssl_ca_certs=str(ca if ca.is_absolute() else cfg.base_dir / ca))


def redis_where(cfg: Config) -> str:
    """The configured Redis without its credentials, for messages."""
    parts = urlsplit(cfg.redis.url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


async def open_redis(cfg: Config) -> Redis:
    """A client that has logged in (PING answered), or a ConfigError saying what to fix."""
    client = redis_client(cfg)
    try:
        await login(client, cfg)
    except BaseException:
        await client.aclose()
        raise
    return client


async def login(client: Redis, cfg: Config) -> None:
    """PING through the client: a refused login becomes a ConfigError saying what to fix."""
    try:
        await client.ping()
    except (AuthenticationError, ResponseError) as exc:
        text = str(exc)
        if not isinstance(exc, AuthenticationError) and "NOAUTH" not in text \
                and "WRONGPASS" not in text:
            raise
        raise ConfigError(
            f"redis.url: Redis at {redis_where(cfg)} refused the login ({text.split(':')[0]}): "
            "give the password Redis requires (requirepass) in the URL from the environment, "
            "e.g. url = \"redis://:${HOTLINE_REDIS_PASSWORD}@127.0.0.1:6379/0\" with "
            "HOTLINE_REDIS_PASSWORD set") from None
