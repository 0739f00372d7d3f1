"""A test module's own Asterisk (a configuration the session's lab does not have), the service
factory on it, and its SIP parties; the module's fixtures are thin wrappers of these."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from agent_desk.softphone.phones import SipPhones
from common.config import Config
from lab.harness import Lab
from tests.support.service import ServiceFactory
from tests.support.waiting import eventually


@asynccontextmanager
async def started_lab(cfg: Config) -> AsyncIterator[Lab]:
    """Asterisk for every node of ``cfg``, stopped at the end."""
    lab = Lab(cfg)
    await lab.start_asterisk()
    try:
        yield lab
    finally:
        await lab.close()


@asynccontextmanager
async def service_factory(lab: Lab, tmp_path: Path, pg_admin: str
                          ) -> AsyncIterator[ServiceFactory]:
    factory = ServiceFactory(lab, tmp_path, pg_admin)
    try:
        yield factory
    finally:
        await factory.close()


@asynccontextmanager
async def sip_parties(lab: Lab, tmp_path: Path, *, passed: Callable[[], bool]
                      ) -> AsyncIterator[SipPhones]:
    """SIP parties for one test; afterwards, if the test ``passed()``, no node may have a
    channel left, trunk legs included."""
    phones = SipPhones(log_dir=tmp_path / "phones")
    lab.sip = phones
    try:
        yield phones
    finally:
        await phones.stop()
        lab.sip = None
    if not passed():
        return
    for node, inst in lab.instances.items():
        async def idle(inst: object = inst) -> bool:
            out = await asyncio.to_thread(inst.cli, "core show channels count")  # type: ignore[attr-defined]
            return out.split(" active channel")[0].strip().split()[-1] == "0"

        await eventually(idle, timeout=15, what=f"no channel left on {node}")
