"""What the fault drills share (tests/drills/test_faults.py, docs/faults.md).

- Servers a drill may break: a private Redis (``RedisServer``: no persistence, so a restart
  loses everything) and a private PostgreSQL cluster (``PostgresCluster``: initdb + pg_ctl as
  the ``postgres`` user, on a free port, its socket in a temporary directory), so the shared
  servers other tests use are never touched.
- A surge of real SIP calls (``Surge``): pjsua2 callers, each in its own process with its own
  number (so each call's case is found by the caller's number), and auto-answering agents;
  the phones tell what really happened to each call (who answered, who hung up).
- One checker of what must hold after every fault (``problems``):
    * cases: every call placed has exactly one case, none extra, and each is complete (arrival,
      end, the agent who really answered, an outcome, who hung up, or an honest
      ``end_unknown`` where Asterisk itself lost the call);
    * live state: agents' queues, pause and state and the callers waiting in each queue in
      Redis (telephony/live/state.py) equal Asterisk's own (QueueStatus, QueueSummary over AMI),
      and so do the calls up;
    * transcription jobs: every answered call's recordings are stored and transcribed, or
      pending in a way that will complete (listed in the Redis job queue); none dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from asr.jobs import JobQueue
from asr.models import Recording, Transcript
from cases.models import Case
from common import events as ev
from common.facts import agent_of, trunk_of
from common.livekeys import LiveKeys
from common.privacy import PersonalData, mask_number
from common.replies import text_map, text_or_none, text_set
from common.tasks import cancel_and_wait
from lab.harness import free_port
from telephony.ami import AmiActionFailed, AmiClient
from telephony.live.state import MEMBER_STATUS

PG_BIN = Path("/usr/lib/postgresql/15/bin")


# -- servers a drill may restart ---------------------------------------------------------------

def _answers(port: int, probe: bytes, expect: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(probe)
            return s.recv(64).startswith(expect)
    except OSError:
        return False


class RedisServer:
    """The Debian redis-server on a free port, without persistence: a restart loses it all."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
             "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _answers(self.port, b"PING\r\n", b"+PONG"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start: "
                                   f"{(self.dir / 'redis.log').read_text()[-800:]}")
            time.sleep(0.05)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


class PostgresCluster:
    """A private PostgreSQL 15 cluster run as the ``postgres`` user (PostgreSQL refuses root),
    in a temporary directory that user owns, on a free port; the shared server is untouched."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-drill-pg-"))
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.running = False

    def _pg(self, tool: str, *args: str, timeout: float = 90) -> str:
        res = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args],
                             capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if res.returncode != 0:
            log = (self.dir / "server.log")
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {res.stderr}\n{tail}")
        return res.stdout

    def init(self) -> PostgresCluster:
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--no-sync", "--no-instructions")
        return self

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections=60")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                 "-t", "60", "-o", opts, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions are ended, a clean shutdown; ``immediate``: as a crash, with
        recovery from the WAL at the next start."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @property
    def admin(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a surge of real calls, and what really happened to each ----------------------------------

@dataclass
class Placed:
    """One call placed by a caller of its own (its number finds its case)."""

    number: str
    phone: Any
    call: Any = None
    agent: str | None = None  # the agent whose phone answered it
    # How it ended, as the case must say: "caller" (the caller hung up while Asterisk was
    # up), "unknown" (Asterisk died with the call up: only an honest end_unknown fits).
    end: str = "caller"

    @property
    def masked(self) -> str:
        return mask_number(self.number)


_SIP_USER = re.compile(r"sip:(\+?[\d*]+)@")  # masked on agents' phones: 139****0004


class Surge:
    """Agents who answer, and callers placed one by one; ``calls`` is the phones' truth."""

    def __init__(self, *, agent: Callable[[str], Awaitable[Any]],
                 caller: Callable[[str], Awaitable[Any]],
                 dial: Callable[[Any], Awaitable[Any]], first_number: int = 13900000000):
        self._agent, self._caller, self._dial = agent, caller, dial
        self.agents: dict[str, Any] = {}
        self.calls: list[Placed] = []
        self._spare: list[Placed] = []
        self._next = first_number
        self._tasks: list[asyncio.Task[None]] = []
        self.answers: list[tuple[str, Any]] = []

    async def add_agents(self, *ids: str) -> None:
        for agent_id in ids:
            phone = await self._agent(agent_id)
            self.agents[agent_id] = phone
            self._tasks.append(asyncio.create_task(self._watch(agent_id, phone)))

    async def _watch(self, agent_id: str, phone: Any) -> None:
        while True:
            incoming = await phone.incoming.get()
            self.answers.append((agent_id, incoming))
            asyncio.get_running_loop().create_task(self._answered(agent_id, incoming))

    async def _answered(self, agent_id: str, incoming: Any) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(incoming.answered.wait(), 30)
            m = _SIP_USER.search(incoming.record.remote_uri)
            placed = next((p for p in self.calls if m and mask_number(p.number) == m.group(1)),
                          None)
            if placed is not None:
                placed.agent = agent_id

    async def callers(self, n: int) -> None:
        """Start ``n`` callers' processes ahead, so placing a call is quick."""
        for _ in range(n):
            number = str(self._next)
            self._next += 1
            self._spare.append(Placed(number, await self._caller(number)))

    async def place(self) -> Placed:
        if not self._spare:
            await self.callers(1)
        placed = self._spare.pop(0)
        placed.call = await self._dial(placed.phone)
        self.calls.append(placed)
        return placed

    async def hang_up(self, placed: Placed) -> None:
        """The caller hangs up; its process ends (one call per caller: fewer processes)."""
        with contextlib.suppress(Exception):
            await placed.phone.hangup(placed.call)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(placed.call.disconnected.wait(), 10)
        self._tasks.append(asyncio.create_task(placed.phone.close()))

    async def hang_up_all(self) -> None:
        """The callers still waiting hang up first, then those talking. All at once, a
        talking caller's hang-up frees an agent whom the queue at once offers a waiting
        caller: the agent's phone answers as that caller's BYE arrives, and whether the two
        were ever connected is a race (the phones say answered, Asterisk rightly says
        abandoned). Found by the drills' flake hunt (1 run in 9)."""
        waiting = [p for p in self.up() if not p.agent]
        await asyncio.gather(*(self.hang_up(p) for p in waiting))
        await asyncio.gather(*(self.hang_up(p) for p in self.up()))

    async def hang_up_agents(self) -> None:
        """The agents' side of calls their Asterisk forgot (it was killed: no BYE came)."""
        for agent_id, incoming in self.answers:
            if not incoming.disconnected.is_set():
                with contextlib.suppress(Exception):
                    await self.agents[agent_id].hangup(incoming)

    def talking(self) -> list[Placed]:
        return [p for p in self.calls if p.agent and not p.call.disconnected.is_set()]

    def up(self) -> list[Placed]:
        return [p for p in self.calls if not p.call.disconnected.is_set()]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, what="drill calls")
        for p in self._spare:
            with contextlib.suppress(Exception):
                await p.phone.close()


async def queue_entries(ami: AmiClient, n: int) -> bool:
    """At least ``n`` callers waiting in queues, as Asterisk says."""
    return len((await ami.snapshot()).entries) >= n


async def agents_registered(ami: AmiClient, agents: tuple[str, ...]) -> bool:
    """Every one of ``agents`` reachable (not unavailable) in all its queues."""
    members = [m for m in (await ami.snapshot()).members
               if (agent_of(m.interface) or m.member_name) in agents]
    return bool(members) and all(m.status not in (0, 4, 5) for m in members)


# -- the checker ----------------------------------------------------------------------------------

async def case_problems(sessions: Any, personal: PersonalData, calls: list[Placed]
                        ) -> list[str]:
    """Every call placed has exactly one complete case, none extra."""
    async with sessions() as s:
        cases = list((await s.execute(select(Case).options(selectinload(Case.events))))
                     .scalars())
    by_hash: dict[str | None, list[Case]] = {}
    for c in cases:
        by_hash.setdefault(c.caller_hash, []).append(c)
    out: list[str] = []
    for p in calls:
        mine = by_hash.pop(personal.lookup_hash(p.number), [])
        if len(mine) != 1:
            out.append(f"{p.masked}: {len(mine)} cases for one call "
                       f"{[c.number for c in mine]}")
            continue
        c = mine[0]
        out += [f"{p.masked} case {c.number}: {why}" for why in _incomplete(c, p)]
    for rest in by_hash.values():
        out += [f"case {c.number} ({c.caller_masked}) for no call placed" for c in rest]
    return out


def _incomplete(c: Case, p: Placed) -> list[str]:
    kinds = [e.kind for e in c.events]
    out = []
    if c.call_state != "ended":
        out.append(f"still {c.call_state}")
    if c.arrived_at is None or kinds.count("arrived") != 1:
        out.append(f"arrival facts {kinds.count('arrived')}, arrived_at {c.arrived_at}")
    if c.ended_at is None or not ({"ended", "orphaned"} & set(kinds)):
        out.append("no end")
    if c.agent_id != p.agent:
        out.append(f"agent {c.agent_id}, but {p.agent} answered")
    if p.agent:
        if c.answered_at is None or c.outcome != "answered" or "answered" not in kinds:
            out.append(f"answered by {p.agent} but outcome {c.outcome}, "
                       f"answered_at {c.answered_at}")
    elif c.outcome not in ("abandoned", "dropped", "unknown"):
        out.append(f"never answered but outcome {c.outcome}")
    unknown = "end_unknown" in (c.flags or [])
    if p.end == "unknown":
        if not unknown and c.hangup_by not in ("caller", "agent", "system"):
            out.append(f"cut call: hangup_by {c.hangup_by}, flags {c.flags}")
    elif c.hangup_by != p.end:
        out.append(f"hung up by {p.end} but hangup_by {c.hangup_by} (flags {c.flags}, "
                   f"facts {[(e.kind, e.source) for e in c.events]})")
    if unknown and p.end != "unknown":
        out.append("closed as end_unknown although Asterisk knew how it ended")
    if unknown and c.hangup_by != "system":
        out.append(f"end_unknown with hangup_by {c.hangup_by}")
    return out


async def asterisk_state(ami: AmiClient) -> tuple[ev.Snapshot, dict[str, int]]:
    """Asterisk's own view: CoreShowChannels + QueueStatus, and QueueSummary's callers."""
    snap = await ami.snapshot()
    try:
        summary = await ami.send_list({"Action": "QueueSummary"})
    except AmiActionFailed:
        summary = []
    return snap, {str(m.get("Queue")): int(m.get("Callers") or 0) for m in summary}


async def live_problems(ami: AmiClient, redis: Redis, prefix: str, node: str) -> list[str]:
    """Differences between the live state in Redis and Asterisk's (empty: equal)."""
    snap, summary = await asterisk_state(ami)
    out: list[str] = []
    # Agents: each one's queues, penalty and pause, and its state.
    want: dict[str, dict[str, dict[str, Any]]] = {}
    states: dict[str, set[str]] = {}
    for m in snap.members:
        if "@node-" in m.interface:
            continue  # lent agents are their home node's
        agent = agent_of(m.interface) or m.member_name
        want.setdefault(agent, {})[m.queue] = {"penalty": m.penalty, "paused": m.paused}
        states.setdefault(agent, set()).add(
            "paused" if m.paused and m.status in (1, 0) else MEMBER_STATUS.get(m.status,
                                                                               "unknown"))
    keys = LiveKeys(prefix)
    known = text_set(await redis.smembers(keys.agents(node))) | set(want)
    for agent in sorted(known):
        raw = text_map(await redis.hgetall(keys.agent_queues(agent)))
        got = {q: json.loads(v) for q, v in raw.items()}
        if got != want.get(agent, {}):
            out.append(f"agent {agent}: queues in Redis {got}, in Asterisk "
                       f"{want.get(agent, {})}")
        if agent in states:
            state = text_or_none(await redis.hget(keys.agent(agent), "state"))
            if state not in states[agent]:
                out.append(f"agent {agent}: state {state} in Redis, {states[agent]} in "
                           f"Asterisk")
    # Queues: who waits where.
    waiting: dict[str, set[str]] = {}
    for e in snap.entries:
        waiting.setdefault(e.queue, set()).add(f"{node}:{e.channel.linkedid}")
    found = [k async for k in redis.scan_iter(keys.waiting.glob)]
    head, tail = keys.waiting.head, keys.waiting.tail
    queues = {k[len(head):-len(tail)] for k in found} | set(waiting)
    for q in sorted(queues):
        got_w = {str(m) for m in await redis.zrange(keys.waiting(q), 0, -1)}
        if got_w != waiting.get(q, set()):
            out.append(f"queue {q}: waiting in Redis {sorted(got_w)}, in Asterisk "
                       f"{sorted(waiting.get(q, set()))}")
    for q, callers in summary.items():
        if callers != len(waiting.get(q, ())):
            out.append(f"queue {q}: QueueSummary says {callers} caller(s), QueueStatus "
                       f"{len(waiting.get(q, ()))}")
    # Calls up.
    up = {f"{node}:{c.channel.linkedid}" for c in snap.channels
          if c.channel.uniqueid == c.channel.linkedid and trunk_of(c.channel.name)}
    got_calls = text_set(await redis.smembers(keys.calls(node)))
    if got_calls != up:
        out.append(f"calls up in Redis {sorted(got_calls)}, in Asterisk {sorted(up)}")
        for extra in sorted(got_calls - up):  # what wrote it last tells why it stayed
            leftover = text_map(await redis.hgetall(keys.call(str(extra))))
            out.append(f"  {extra} in Redis: {leftover}")
    for call_id in sorted(up & got_calls):
        h = text_map(await redis.hgetall(keys.call(call_id)))
        if h.get("state") in (None, "ended"):
            out.append(f"call {call_id} up in Asterisk, {h.get('state')} in Redis")
    return out


async def transcript_problems(sessions: Any, queue: JobQueue, *,
                              final: bool = False) -> list[str]:
    """Every answered call's recordings stored and transcribed; with ``final=False`` a job
    still pending or running counts only if the Redis queue lists it (it will complete)."""
    async with sessions() as s:
        answered = list((await s.execute(select(Case).where(
            Case.answered_at.is_not(None)))).scalars())
        recs: dict[int, set[str]] = {}
        for case_id, side in (await s.execute(select(Recording.case_id, Recording.side))):
            recs.setdefault(case_id, set()).add(side)
        ts = {t.case_id: t for t in (await s.execute(select(Transcript))).scalars()}
    out = []
    for c in answered:
        if not {"caller", "agent"} <= recs.get(c.id, set()):
            out.append(f"case {c.number}: recordings {sorted(recs.get(c.id, set()))}")
            continue
        t = ts.get(c.id)
        status = t.status if t is not None else None
        if status == "done":
            continue
        if status in (None, "pending", "running") and not final:
            if status is not None and await queue.is_queued(c.number):
                continue
            out.append(f"case {c.number}: transcript {status}, not in the job queue (lost)")
        else:
            out.append(f"case {c.number}: transcript {status} "
                       f"({t.error if t is not None else 'no transcript'})")
    return out


@dataclass
class Checker:
    """All three checks against one deployment (the service's database, Redis, Asterisk)."""

    sessions: Any
    personal: PersonalData
    redis: Redis
    prefix: str
    node: str
    ami: AmiClient
    asr: bool = True
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def jobs(self) -> JobQueue:
        return JobQueue(self.redis, self.prefix)

    async def live(self, timeout: float = 20.0) -> None:
        """The live state equals Asterisk's (polled: both sides move while calls run)."""
        last: list[str] = []
        started = deadline = time.monotonic()
        deadline += timeout
        while time.monotonic() < deadline:
            try:
                last = await live_problems(self.ami, self.redis, self.prefix, self.node)
            except RedisConnectionError as exc:  # a pooled connection from before a restart
                last = [f"Redis: {exc}"]
            if not last:
                self.timings["live_s"] = round(time.monotonic() - started, 1)
                return
            await asyncio.sleep(0.3)
        raise AssertionError("live state differs from Asterisk's:\n  " + "\n  ".join(last))

    async def cases(self, calls: list[Placed], *, timeout: float = 40.0) -> None:
        last: list[str] = []
        started = deadline = time.monotonic()
        deadline += timeout
        while time.monotonic() < deadline:
            last = await case_problems(self.sessions, self.personal, calls)
            if not last:
                self.timings["cases_s"] = round(time.monotonic() - started, 1)
                return
            await asyncio.sleep(0.5)
        raise AssertionError("cases wrong:\n  " + "\n  ".join(last))

    async def transcripts(self, *, complete: bool = True, timeout: float = 180.0) -> None:
        """Every answered call's recordings stored and its job done or queued (none lost);
        with ``complete``, every job done in the end."""
        if not self.asr:
            return
        last: list[str] = []
        started = deadline = time.monotonic()
        deadline += 30.0
        while time.monotonic() < deadline:  # recordings reach the case a little after
            last = await transcript_problems(self.sessions, self.jobs)
            if not last:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("recordings or transcription jobs lost:\n  "
                                 + "\n  ".join(last))
        deadline = started + timeout
        while complete and time.monotonic() < deadline:
            last = await transcript_problems(self.sessions, self.jobs, final=True)
            if not last:
                break
            await asyncio.sleep(1)
        else:
            if complete:
                raise AssertionError("transcripts not all done:\n  " + "\n  ".join(last))
        self.timings["transcripts_s"] = round(time.monotonic() - started, 1)

    async def all(self, calls: list[Placed], *, transcribed: bool = True,
                  transcript_timeout: float = 180.0) -> None:
        """The three checks; ``transcribed``: wait until every transcript is done, not only
        that none is lost."""
        started = time.monotonic()
        await self.cases(calls)
        await self.live()
        await self.transcripts(complete=transcribed, timeout=transcript_timeout)
        self.timings["check_s"] = round(time.monotonic() - started, 1)

    async def close(self) -> None:
        await self.ami.stop()
        await self.redis.aclose()


async def ami_for(node: Any, secret: str) -> AmiClient:
    ami = AmiClient(node=node.id, host=node.ami_host, port=node.ami_port,
                    username=node.ami_username, secret=secret, ping_interval=2.0)
    await ami.start()
    await ami.wait_connected(30)
    return ami
