"""What a dialled leg came to, from what Asterisk told (a transfer leg's outcome).

Shared vocabulary: call control (telephony.transfers) classifies the legs it dials live; the
CEL replay (telephony.calls.cel) classifies the legs that ended while the service was away,
the same way; the case records and the console show these outcomes.
"""

from __future__ import annotations

# What a leg's dial came to (the case's transfer_legs.outcome; the console translates these).
ANSWERED, BUSY, NO_ANSWER, FAILED = "answered", "busy", "no_answer", "failed"
CALLER_HUNG_UP, CANCELLED = "caller_hung_up", "cancelled"


def classify_failure(*, channel_seen: bool, dial_status: str, cause: int | None,
                     originate_reason: int | None, timeout_s: int) -> tuple[str, str]:
    """Why a destination was not reached, from what Asterisk told: (outcome, reason).

    Asterisk creates no channel for a trunk whose qualify says it is unreachable; a SIP 486
    is cause 17 (DialStatus BUSY), 603 is 21, a ring timeout is Originate reason 3 (cause 19),
    503 and friends are congestion (cause 34 and neighbours)."""
    if not channel_seen:
        return FAILED, "unreachable: the destination's trunk is down or refused the call"
    if dial_status == "BUSY" or cause == 17:
        return BUSY, "busy"
    if cause == 21:
        return BUSY, "declined"
    if originate_reason == 3 or cause in (18, 19) or dial_status == "NOANSWER":
        return NO_ANSWER, f"no answer within {timeout_s} s" if timeout_s else "no answer"
    if dial_status in ("CONGESTION", "CHANUNAVAIL") or cause in (1, 3, 27, 34, 38, 41, 42, 44):
        return FAILED, f"the destination's network failed (cause {cause})"
    return FAILED, f"not connected (cause {cause}, dial status {dial_status or '-'})"
