"""Fault drills (docs/faults.md): real calls through the real Asterisk while a part of the
deployment fails, then the same three checks after each (tests/support/drills.py): one complete
case per call and none extra, the live state in Redis equal to Asterisk's, no transcription job
lost. The service killed -9 as its own process is in tests/drills/test_faults_service.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.support.asterisk import wait_no_channels
from tests.support.drills import (
    Checker,
    Placed,
    PostgresCluster,
    RedisServer,
    Surge,
    agents_registered,
    ami_for,
    queue_entries,
)
from tests.support.netfault import FaultProxy
from tests.support.service import vosk_test_model
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

AGENTS = ("1001", "1002", "2001")


async def start_service(services: Any, tmp_path: Path, *, db_url: str | None = None,
                        redis_url: str | None = None, asr: bool = True,
                        **kwargs: Any) -> Any:
    """The service on the session's Asterisk with the real Vosk model, on its own database
    (and Redis, when given); stopped by the ``services`` fixture."""
    base = services.lab.cfg
    cfg = services.config(
        db_url or await services.database("sqlite"),
        redis=base.redis.model_copy(update={"prefix": services.prefix,
                                            **({"url": redis_url} if redis_url else {})}),
        asr=base.asr.model_copy(update={"enabled": asr, "model": vosk_test_model(),
                                        "workers": 1, "lease_s": 3.0, "live": False}),
        recording=base.recording.model_copy(update={"dir": tmp_path / "recordings"}))
    kwargs.setdefault("ami_options", {"ping_interval": 1.0, "ping_timeout": 1.0,
                                      "backoff": (0.1, 0.2, 0.5)})
    service = services.lab.build_service(cfg, cel_from_now=True, cel_interval_s=2.0,
                                         redis_check_s=0.5, **kwargs)
    await service.start()
    await service.wait_connected(20)
    services.services.append(service)
    service.transcripts.cut_after_s = 3.0
    service.transcripts.requeue_interval_s = 10.0
    return service


def surge_on(lab: Any, sounds: dict[str, Path], first: int) -> Surge:
    async def agent(agent_id: str) -> Any:
        return await lab.agent(agent_id, play=sounds["agent_speech"])

    async def caller(number: str) -> Any:
        return await lab.caller(number, play=sounds["caller_speech"])

    return Surge(agent=agent, caller=caller, dial=lambda phone: lab.dial(phone),
                 first_number=first)


async def checker_for(service: Any) -> Checker:
    """The checker with its own AMI and Redis connections (not the service's)."""
    lab_node = service.cfg.nodes[0]
    ami = await ami_for(lab_node, service.ami_secret)
    return Checker(service.store.sessions, service.personal,
                   Redis.from_url(service.cfg.redis_url, decode_responses=True),
                   service.cfg.redis.prefix, lab_node.id, ami)


async def talking(surge: Surge, n: int, timeout: float = 30) -> None:
    await eventually(lambda: _n(len(surge.talking()) >= n), timeout=timeout,
                     what=f"{n} calls answered")


async def _n(ok: bool) -> bool:
    return ok


async def waiting(service: Any, n: int) -> None:
    async def check() -> bool:
        return sum(len(rt.tracker.calls) for rt in service.nodes.values()) >= n

    await eventually(check, what=f"{n} calls known to the service")


async def finish(lab: Any, surge: Surge) -> None:
    await surge.hang_up_all()
    assert await wait_no_channels(lab, 20) == 0


# -- 3. Redis restarted, its data gone ---------------------------------------------------------

async def test_redis_restarted_empty_live_state_presence_and_jobs_rebuilt(
        lab, phones, services, sounds, tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        await _redis_drill(lab, services, sounds, tmp_path, server)
    finally:
        server.kill()


async def _redis_drill(lab, services, sounds, tmp_path, server: RedisServer) -> None:
    service = await start_service(services, tmp_path, redis_url=server.url)
    check = await checker_for(service)
    prefix = service.cfg.redis.prefix
    started = time.monotonic()
    surge = surge_on(lab, sounds, 13910000000)
    try:
        # Console state kept in Redis: an agent signed out, a supervisor's skill change.
        await service.presence.sign_out("2001", by="drill")
        await service.skills.change("1002", {"general": 3, "lang_en": 4,
                                             "enterprise_policy": 2}, by="drill")
        await surge.add_agents(*AGENTS)
        await surge.callers(6)
        first, second = await surge.place(), await surge.place()
        await talking(surge, 2)
        await asyncio.sleep(2)
        await surge.hang_up(first)          # a recording to transcribe, just before
        await talking(surge, 1)
        await surge.place()                 # talking to the agent just freed
        await surge.place()                 # waiting: both agents busy
        await talking(surge, 2)
        await check.live()                  # the checker agrees before the fault

        server.kill()                       # Redis gone ...
        await asyncio.sleep(1.5)
        await surge.hang_up(second)         # ... a call ends (its job cannot be queued)
        await surge.place()                 # ... a call arrives
        await asyncio.sleep(1.5)
        server.start()                      # ... and back, empty
        outage_s = time.monotonic() - started
        await eventually(lambda: _n(service.redis_losses >= 1
                                    and service.redis_recoveries >= 1),
                         what="the service to notice Redis lost its data")
        # Live state, presence and skill changes rebuilt while calls are still up.
        await check.live()
        assert await service.redis.hget(f"{prefix}:signed_in", "2001") == "0"
        assert "1002" in await service.redis.hgetall(f"{prefix}:skills")
        assert len(surge.up()) >= 2
        await asyncio.sleep(2)
        await finish(lab, surge)
        await check.all(surge.calls)
        # The job of the call that ended while Redis was away came back from the database.
        assert service.transcripts.jobs_requeued >= 1
        check.timings["drill_s"] = round(time.monotonic() - started, 1)
        print("redis drill", {"calls": len(surge.calls), "outage_at_s": round(outage_s, 1),
                              **check.timings, **service.stats()["redis"]})
    finally:
        await surge.stop()
        await check.close()
        with contextlib.suppress(Exception):  # the session's Asterisk as it was
            await service.presence.sign_in("2001", by="drill")
            await service.skills.reset("1002", by="drill")


async def calls_up(surge: Surge, check: Checker) -> list[Placed]:
    """Two calls talking, one waiting in the queue, one in the menu (two agents)."""
    a, b = await surge.place(), await surge.place()
    await talking(surge, 2)
    c = await surge.place()
    await eventually(lambda: queue_entries(check.ami, 1), what="a caller waiting")
    d = await surge.place()
    await asyncio.sleep(0.3)  # the menu: Answer, the prompt, a key window
    return [a, b, c, d]


# -- 2. Asterisk restarted with calls up ------------------------------------------------------

async def test_asterisk_restarted_gracefully_and_killed_with_calls_up(
        lab, phones, services, sounds, tmp_path):
    service = await start_service(services, tmp_path)
    check = await checker_for(service)
    ami = service.nodes[lab.node.id].ami
    surge = surge_on(lab, sounds, 13920000000)
    started = time.monotonic()
    try:
        await surge.add_agents("1001", "1002")
        await surge.callers(4)
        for how in ("core restart now", "kill -9"):
            phase = await calls_up(surge, check)
            before = ami.connections
            if how == "kill -9":
                await asyncio.to_thread(lab.instance.kill)
                await lab.start_asterisk()
            else:
                await asyncio.to_thread(lab.instance.cli, "core restart now")
                await eventually(lambda: _n(not ami.connected), what="Asterisk to go down")
                await lab.instance.wait_ready(lab.cfg.ami_secret)
            for p in phase:
                p.end = "unknown"  # Asterisk itself lost these calls
            await surge.callers(4)
            await surge.hang_up_all()
            await surge.hang_up_agents()
            await eventually(lambda b=before: _n(ami.connected and ami.connections > b),
                             timeout=30, what="the service back on the new Asterisk")
            await check.ami.wait_connected(30)
            await eventually(lambda: agents_registered(check.ami, ("1001", "1002")),
                             timeout=60, what="agents registered again")
            await check.cases(surge.calls)
            await check.live()
        # And a call as usual after both.
        last = await surge.place()
        await talking(surge, 1)
        await asyncio.sleep(2)
        await surge.hang_up(last)
        assert await wait_no_channels(lab, 20) == 0
        await check.all(surge.calls)
        print("asterisk drill", {"calls": len(surge.calls),
                                 "drill_s": round(time.monotonic() - started, 1),
                                 **check.timings})
    finally:
        await surge.stop()
        await check.close()


# -- 4. PostgreSQL restarted (fast and immediate) with calls in progress ------------------------

async def test_postgresql_restarted_fast_and_immediate_with_calls_in_progress(
        lab, phones, services, sounds, tmp_path):
    cluster = PostgresCluster()
    try:
        await asyncio.to_thread(cluster.init)
        await asyncio.to_thread(cluster.start)
        conn = await asyncpg.connect(cluster.admin)
        await conn.execute("CREATE DATABASE hotline")
        await conn.close()
        service = await start_service(services, tmp_path, db_url=cluster.url("hotline"))
        await _postgres_drill(lab, service, sounds, cluster)
    finally:
        await asyncio.to_thread(cluster.destroy)


async def _postgres_drill(lab, service, sounds, cluster: PostgresCluster) -> None:
    check = await checker_for(service)
    surge = surge_on(lab, sounds, 13940000000)
    started = time.monotonic()
    outages = {}
    try:
        await surge.add_agents("1001", "1002")
        await surge.callers(5)
        for mode in ("fast", "immediate"):
            a, _b, _c, _d = await calls_up(surge, check)
            held = service.store.unavailable_retries
            t0 = time.monotonic()
            await asyncio.to_thread(cluster.stop, mode)
            await surge.hang_up(a)           # ends during the outage
            await surge.place()              # arrives during the outage
            await eventually(lambda h=held: _n(service.store.unavailable_retries > h),
                             what="facts held for the database")
            await asyncio.sleep(1)
            await asyncio.to_thread(cluster.start)
            outages[mode] = round(time.monotonic() - t0, 1)
            await surge.callers(5)
            await asyncio.sleep(2)
            await surge.hang_up_all()
            assert await wait_no_channels(lab, 20) == 0
            await check.cases(surge.calls)
            await check.live()
        await check.all(surge.calls, transcribed=False)  # none lost (done or queued)
        print("postgresql drill", {"calls": len(surge.calls), "outages_s": outages,
                                   "held_retries": service.store.unavailable_retries,
                                   "drill_s": round(time.monotonic() - started, 1),
                                   **check.timings})
    finally:
        await surge.stop()
        await check.close()


# -- 5. AMI black-holed (half-open), calls starting and ending inside it -----------------------

async def test_ami_black_holed_while_calls_start_and_end(lab, phones, services, sounds,
                                                         tmp_path):
    proxy = await FaultProxy("127.0.0.1", lab.node.ami_port).start()
    service = await start_service(services, tmp_path,
                                  ami_addresses={lab.node.id: ("127.0.0.1", proxy.port)})
    check = await checker_for(service)  # its own AMI, straight to Asterisk
    ami = service.nodes[lab.node.id].ami
    surge = surge_on(lab, sounds, 13950000000)
    started = time.monotonic()
    try:
        await surge.add_agents("1001", "1002")
        await surge.callers(4)
        first = await surge.place()
        await talking(surge, 1)
        before = ami.connections
        proxy.blackhole(including_new=True)  # nothing flows, nothing closes
        await eventually(lambda: _n(not ami.connected), timeout=15,
                         what="the watchdog to drop the silent connection")
        inside = await surge.place()         # starts in the black hole ...
        await talking(surge, 2)
        await asyncio.sleep(2)
        await surge.hang_up(inside)          # ... and ends in it
        await surge.hang_up(first)           # began before, ends inside
        waiting_call = await surge.place()   # starts inside, still up after
        await talking(surge, 1)
        proxy.blackhole(False)
        await eventually(lambda: _n(ami.connected and ami.connections > before), timeout=30,
                         what="AMI back")
        await check.live()
        assert waiting_call in surge.talking()
        await asyncio.sleep(1)
        await finish(lab, surge)
        await check.all(surge.calls, transcribed=False)  # none lost (done or queued)
        cases = await service.store.recent(10)
        assert any(e.source == "cel" for c in cases for e in c.events)
        print("ami black hole drill", {"calls": len(surge.calls),
                                       "drill_s": round(time.monotonic() - started, 1),
                                       **check.timings})
    finally:
        await surge.stop()
        await check.close()
        await proxy.stop()
