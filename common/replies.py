"""Redis replies as text.

Every Redis client of ours is built with ``decode_responses=True``, so its replies are already
``str``; redis-py types them ``bytes | str`` whatever the client. These helpers say which one we
have, and decode should a client built without that option ever reach them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def text(reply: bytes | str) -> str:
    return reply if isinstance(reply, str) else reply.decode()


def text_or_none(reply: bytes | str | None) -> str | None:
    return None if reply is None else text(reply)


def text_map(reply: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash (HGETALL) as text."""
    return {text(k): text(v) for k, v in reply.items()}


def text_set(reply: Iterable[bytes | str]) -> set[str]:
    """A set (SMEMBERS) as text."""
    return {text(m) for m in reply}
