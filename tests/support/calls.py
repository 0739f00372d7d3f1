"""Real calls through the session's Asterisk, as several tests place them: a caller answered by
an agent (ended, or still up), the service behind a fault proxy, the one case a call leaves,
and the parties at a transfer destination's trunk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lab.harness import Lab, aor_status
from tests.support.netfault import FaultProxy
from tests.support.service import ServiceFactory
from tests.support.waiting import eventually

CALLER = "13812345678"


async def answered_call(lab: Lab, phones: Any, sounds: dict[str, Path], *,
                        agent_id: str = "1001", caller: str = CALLER, name: str = "张三",
                        talk_s: float = 3.0, trunk: str = "nanjing",
                        agent_play: str = "tone_agent", caller_play: str = "caller_speech",
                        tmp: Path) -> tuple[Any, Any]:
    """A call answered by the agent, talked for ``talk_s`` and hung up by the caller: the
    caller's call and the agent's incoming call, both recorded under ``tmp``."""
    agent = await lab.agent(agent_id, play=sounds[agent_play], record_dir=tmp / "rec")
    party = await lab.caller(caller, display_name=name, play=sounds[caller_play],
                             record_dir=tmp / "rec")
    call = await lab.dial(party, trunk=trunk)
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    await asyncio.sleep(talk_s)
    await party.hangup(call)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await party.close()  # returns once its process has finished its recordings and exited
    await agent.close()
    return call, incoming


async def proxied_service(lab: Lab, services: ServiceFactory,
                          **kwargs: Any) -> tuple[FaultProxy, Any]:
    """The service started with its AMI connection through a fault injector."""
    proxy = await FaultProxy("127.0.0.1", lab.node.ami_port).start()
    service = await services.start(ami_addresses={lab.node.id: ("127.0.0.1", proxy.port)},
                                   **kwargs)
    return proxy, service


async def call_in_progress(lab: Lab, sounds: dict[str, Path], tmp_path: Path, *,
                           caller: str = "13900001111", name: str = "王五",
                           trunk: str = "nanjing") -> tuple[Any, Any, Any, Any]:
    """A caller talking with agent 1001 (answered, still up): agent, caller party, the
    caller's call and the agent's incoming call."""
    agent = await lab.agent("1001", play=sounds["tone_agent"], record_dir=tmp_path / "rec")
    members = await asyncio.to_thread(lab.instance.cli, "queue show province-general")
    assert "PJSIP/1001" in members, members
    party = await lab.caller(caller, display_name=name, play=sounds["caller_speech"])
    call = await lab.dial(party, trunk=trunk)
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    return agent, party, call, incoming


async def hang_up(party: Any, call: Any, incoming: Any) -> None:
    """The caller hangs up; returns once the agent's side is gone too."""
    await party.hangup(call)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)


def arrived_names(service: Any, node_id: str) -> list[str]:
    """The callers' names (CallerIDName) as the service decoded them from AMI, call by call:
    the service keeps no name (minimum necessary), so a test listens for the arrivals."""
    names: list[str] = []

    async def listen(fact: Any) -> None:
        if fact.kind == "arrived":
            names.append(fact.data.get("caller_name", ""))
    service.nodes[node_id].tracker.sinks.append(listen)
    return names


async def only_case(service: Any, state: str = "ended") -> Any:
    """The one case the service holds, once every case is in ``state``."""
    async def check() -> Any:
        cases = await service.store.recent(10)
        return cases if cases and all(c.call_state == state for c in cases) else None

    cases = await eventually(check, what=f"cases to be {state}")
    assert len(cases) == 1, [c.number for c in cases]
    return cases[0]


# -- transfer destinations ----------------------------------------------------------------------

async def destination_line(lab: Lab, sounds: dict[str, Path], tmp: Path, dest: str, tone: str,
                           **kwargs: Any) -> Any:
    """The party at a destination's trunk; returns once Asterisk sees its trunk reachable."""
    phone = await lab.line(dest, play=sounds[tone], record_dir=tmp / "rec", **kwargs)
    await wait_trunk(lab, dest, "Reachable")
    return phone


async def wait_trunk(lab: Lab, dest: str, status: str) -> None:
    """Wait until Asterisk sees a destination's trunk "Reachable" (or else unavailable)."""
    await wait_aor(lab, lab.cfg.destination(dest).endpoint, status)


async def wait_aor(lab: Lab, aor: str, status: str = "Reachable", timeout: float = 20) -> None:
    """Wait until Asterisk's qualify says an AOR (a trunk, an agent's phone) "Reachable" (or
    else unavailable): a phone registered but not yet qualified, or whose first OPTIONS was
    answered late under load, is not offered queue calls until its next qualify."""

    async def check() -> bool:
        return (await aor_status(lab.instance, aor))[0] == status

    await eventually(check, timeout=timeout, what=f"AOR {aor} {status}")


async def answered_incoming(phone: Any, timeout: float = 20) -> Any:
    """The next call ringing at ``phone``, once answered."""
    call = await asyncio.wait_for(phone.incoming.get(), timeout)
    await asyncio.wait_for(call.answered.wait(), timeout)
    return call


async def ringing_for(phone: Any, leg: Any, timeout: float = 20) -> Any:
    """The call a transfer ``leg`` rings at ``phone``; if the leg ends first, a failure that
    says how it ended (not a bare timeout: a flake once left only "no ring in 20 s")."""
    ring = asyncio.ensure_future(phone.incoming.get())
    settled = asyncio.ensure_future(leg.settled.wait())
    try:
        done, _ = await asyncio.wait({ring, settled}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (ring, settled):
            if not task.done():
                task.cancel()
    if ring in done:
        return ring.result()
    if settled in done:
        raise AssertionError(f"the transfer leg ended before {phone.name} rang: "
                             f"{leg.outcome}: {leg.reason}")
    raise AssertionError(f"{phone.name} did not ring within {timeout} s "
                         f"(leg {leg.state}, {leg.outcome}: {leg.reason})")


async def settled_leg(leg: Any, timeout: float = 30) -> Any:
    """A transfer leg once it is answered or has failed."""
    await asyncio.wait_for(leg.settled.wait(), timeout)
    return leg
