"""Which phone numbers the hotline may call back: a caller ID (missed-call callbacks), or the
number a citizen writes on the public form or a channel sends (agent_desk/intake).

The caller ID is whatever the caller's network (or the caller) said: a spoofed premium,
international or emergency number would make the hotline call it under its own number, and
characters such as ``,`` ``&`` ``@`` in it could add Dial options or a second channel. A
callback dials only a number that matches ``[callbacks] allowed_patterns`` (Chinese mobiles
and landlines by default), written back as digits only; the dialplan filters it again
(``[hotline-callback]`` in extensions.conf)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from common.errors import DomainError
from common.privacy import mask_number

# What a person writes between digit groups; anything else in a number refuses it.
_FORMATTING = re.compile(r"[ \-()]")


@lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


def callback_number(raw: str, allowed_patterns: Iterable[str],
                    refused: Iterable[str] = ()) -> str:
    """The number to dial for a callback, digits only, or DomainError ``number_not_allowed``
    (the message names the number masked). ``refused``: numbers never to call back (the
    emergency lines), whatever the patterns say."""
    number = _FORMATTING.sub("", raw.strip())
    if number.startswith("+86"):
        number = number[3:]
    elif number.startswith("0086"):
        number = number[4:]
    if not number.isascii() or not number.isdigit():
        raise DomainError("number_not_allowed",
                          f"the caller's number {mask_number(raw)!r} is not a phone number: "
                          f"no callback")
    if number in set(refused) or not any(
            p.fullmatch(number) for p in _compiled(tuple(allowed_patterns))):
        raise DomainError("number_not_allowed",
                          f"a callback may dial only a Chinese mobile or landline number, not "
                          f"{mask_number(number)} (a short code, emergency, premium or "
                          f"international number): call it back by hand if it is right")
    return number
