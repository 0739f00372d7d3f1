"""Issue 15, Low: the dialed number reaches the router's AGI arguments filtered. A ``,`` in a
SIP request's user part would otherwise shift the arguments: ``12345,,,1`` from a public
carrier trunk would claim to be a hand-over from an emergency line and jump the queue."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk]


async def test_a_comma_in_the_dialed_number_cannot_claim_a_handover(lab, services, phones):
    service = await services.start("sqlite")
    party = await lab.caller("13800000077")
    call = await lab.dial(party, "12345,,,1", trunk="nanjing")

    async def routed():
        cases = await service.store.recent(10)
        return next((c for c in cases if c.route_queue), None)
    try:
        case = await eventually(routed, 30, what="the call to be routed")
    finally:
        await party.hangup(call)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.disconnected.wait(), 10)
        await party.close()
    assert "handover" not in case.flags, (case.flags, case.route_reasons)
    assert case.priority != service.cfg.routing.priority_handover
    assert case.route_source == "router"  # and the router knew the call (its linkedid)
