"""Surges across cities (多援一), live: figures from Redis, moves through AMI, an audit in the
database. ``service.surge`` is a SurgeManager; the console and ``hotline surge`` call it.

How a lent agent answers another city's calls: the surging city's node gets a queue member
``PJSIP/<agent>@node-<home node>`` (the call goes over the inter-node trunk to the agent's own
node, which rings the agent's phone) with the state interface ``Custom:agent-<agent>``, which
this manager keeps equal to the agent's device state on the home node (so the queue never rings
a lent agent who is busy at home). Moves, proposals and locks live in Redis, shared by every
service instance and the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from cases.surge_audit import SurgeAudit
from common import events as ev
from common.config import Config, SurgeSection
from common.livekeys import LiveKeys
from common.queues import queue_name, split_queue
from common.replies import text_map, text_or_none
from common.tasks import cancel_and_wait
from queueing.surge.model import (
    PRESENT_STATES,
    Candidate,
    Hysteresis,
    Observed,
    QueueFigures,
    SurgeError,
    figures,
    plan,
    projected,
)
from telephony.ami import AmiClient, AmiError

log = logging.getLogger(__name__)

# Asterisk QueueMember Status (device state) → DEVICE_STATE() value.
DEVICE_STATES = {0: "UNKNOWN", 1: "NOT_INUSE", 2: "INUSE", 3: "BUSY", 4: "INVALID",
                 5: "UNAVAILABLE", 6: "RINGING", 7: "RINGINUSE", 8: "ONHOLD"}


# A lent agent paused in home queues (lent_home = "pause") carries this reason.
PAUSE_REASON = "surge:lent to "


def trunk_endpoint(node_id: str) -> str:
    """The PJSIP endpoint, on every other node, of the inter-node trunk to ``node_id``."""
    return f"node-{node_id}"


def borrowed_interface(agent_id: str, home_node: str) -> str:
    return f"PJSIP/{agent_id}@{trunk_endpoint(home_node)}"


def state_interface(agent_id: str) -> str:
    return f"Custom:agent-{agent_id}"


def is_borrowed_interface(interface: str) -> bool:
    return interface.startswith("PJSIP/") and "@node-" in interface


class SurgeManager:
    def __init__(self, cfg: Config, redis: Redis, prefix: str,
                 ami_of: Callable[[str], AmiClient | None], audit: SurgeAudit, *,
                 skills_of: Callable[[str], dict[str, int]] | None = None,
                 publish: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
                 forecast: Callable[[str], Awaitable[int]] | None = None,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.s = cfg.surge
        self.redis = redis
        self.prefix = prefix
        self.live_keys = LiveKeys(prefix)  # agents' and queues' live state (telephony.live)
        self._ami_of = ami_of
        self.audit = audit
        self.skills_of = skills_of or (lambda a: dict(cfg.agent(a).skills))
        self._publish = publish
        # A city -> the agents its staffing forecast needs now (queueing/surge/staffing.py).
        self.forecast = forecast
        self.clock = clock
        self.hysteresis = Hysteresis(self.s.enter_after_s, self.s.exit_after_s)
        self.watched = {queue_name(c.id, sk): (c.id, sk) for c in cfg.cities
                        for sk in self.s.skills}
        self._task: asyncio.Task[None] | None = None
        self._moves: dict[str, dict[str, Any]] = {}  # agent → move (cache of Redis)
        # The moves and policy as this service last knew them: an empty Redis (restarted
        # without its data) does not erase them, so ``restore`` can write them back.
        self._known_moves: dict[str, dict[str, Any]] = {}
        self._known_policy: dict[str, Any] = {}
        self.auto_moves = 0
        self.auto_returns = 0
        self.ticks = 0
        # Queue observations (arrivals, answers, abandons, handle times: three or four a call)
        # go to Redis a second's worth at a time, not one round trip each (the window is
        # minutes long); a tick writes them first, so what it reads is complete.
        self._observations: list[tuple[str, str, float]] = []
        self._observer: asyncio.Task[None] | None = None

    # -- keys and helpers -------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def ami(self, node: str) -> AmiClient | None:
        try:
            return self._ami_of(node)
        except KeyError:
            return None

    def connected(self, node: str) -> bool:
        a = self.ami(node)
        return bool(a is not None and a.connected)

    def node_of_city(self, city: str) -> str:
        return self.cfg.city(city).node

    async def publish(self, payload: dict[str, Any]) -> None:
        if self._publish is not None:
            with contextlib.suppress(Exception):
                await self._publish("surge", payload)

    # -- run --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="surge")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="surge")
            self._task = None
        if self._observer is not None:
            await cancel_and_wait([self._observer], what="surge-observations")
            self._observer = None
        await self._write_observations()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("surge evaluation failed")
            await asyncio.sleep(self.s.interval_s)

    # -- events (from every node) ------------------------------------------------------------

    async def on_event(self, event: ev.DomainEvent) -> None:
        try:
            await self._on_event(event)
        except (TimeoutError, AmiError, OSError) as exc:
            log.warning("surge event not handled", extra={"error": str(exc)})

    async def _on_event(self, event: ev.DomainEvent) -> None:
        now = self.clock()
        if isinstance(event, ev.QueueCallerJoin) and event.queue in self.watched:
            await self._observe(event.queue, "arr", f"{event.node}:{event.channel.uniqueid}", now)
        elif isinstance(event, ev.AgentConnect) and event.queue in self.watched:
            await self._observe(event.queue, "ans", f"{event.node}:{event.channel.uniqueid}|"
                                f"{event.hold_time:.1f}", now)
        elif isinstance(event, ev.QueueCallerAbandon) and event.queue in self.watched:
            await self._observe(event.queue, "abn", f"{event.node}:{event.channel.uniqueid}", now)
        elif isinstance(event, ev.AgentComplete) and event.queue in self.watched:
            await self._observe(event.queue, "aht", f"{event.node}:{event.channel.uniqueid}|"
                                f"{event.talk_time:.1f}", now)
        elif isinstance(event, ev.QueueMemberEvent):
            m = event.member
            if not is_borrowed_interface(m.interface):
                agent = m.interface.removeprefix("PJSIP/")
                move = self._moves.get(agent)
                if move and move["home_node"] == event.node and m.interface == f"PJSIP/{agent}":
                    await self._set_state(move["node"], agent, DEVICE_STATES.get(m.status,
                                                                                  "UNKNOWN"))
        elif isinstance(event, ev.Connected):
            await self.resync(event.node, event.snapshot)
        elif isinstance(event, ev.Disconnected):
            # The home node is away: its lent agents cannot be reached from other cities.
            # (From the cache, refreshed every tick: no Redis round trip while AMI stops.)
            for agent, move in list(self._moves.items()):
                if move["home_node"] == event.node:
                    await self._set_state(move["node"], agent, "UNAVAILABLE")

    async def _observe(self, queue: str, kind: str, member: str, now: float) -> None:
        self._observations.append((self.key("surge", "q", queue, kind), member, now))
        if self._observer is None or self._observer.done():
            # A fresh context: the batch is about many calls, not the one handled now.
            self._observer = asyncio.get_running_loop().create_task(
                self._write_observations_soon(), context=contextvars.Context())

    async def _write_observations_soon(self) -> None:
        await asyncio.sleep(1.0)
        await self._write_observations()

    async def _write_observations(self) -> None:
        batch, self._observations = self._observations, []
        if not batch:
            return
        by_key: dict[str, dict[str, float]] = {}
        for k, member, at in batch:
            by_key.setdefault(k, {})[member] = at
        oldest = max(at for _, _, at in batch) - self.s.window_s
        pipe = self.redis.pipeline(transaction=False)
        for k, members in by_key.items():
            pipe.zadd(k, members)
            pipe.zremrangebyscore(k, 0, oldest)
            pipe.expire(k, self.s.window_s * 2)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis away: the window refills from new calls
            log.warning("surge observations not written", extra={
                "observations": len(batch), "error": str(exc) or type(exc).__name__})

    async def _set_state(self, node: str, agent: str, state: str) -> None:
        ami = self.ami(node)
        if ami is None or not ami.connected:
            return
        try:
            await ami.send({"Action": "Setvar",
                            "Variable": f"DEVICE_STATE({state_interface(agent)})",
                            "Value": state})
        except AmiError as exc:
            log.warning("lent agent's state not set", extra={"agent": agent, "node": node,
                                                             "error": str(exc)})

    async def home_state(self, agent: str, home_node: str) -> str:
        ami = self.ami(home_node)
        if ami is None or not ami.connected:
            return "UNAVAILABLE"
        resp = await ami.send({"Action": "Getvar", "Variable": f"DEVICE_STATE(PJSIP/{agent})"})
        return str(resp.get("Value") or "UNKNOWN")

    async def resync(self, node: str, snap: ev.Snapshot | None) -> None:
        """After a node (re)connects: its borrowed members are exactly the active moves (a move
        returned while it was away is removed now; one it lost is added back), and lent
        agents' states are pushed again both ways."""
        await self.refresh_moves()
        ami = self.ami(node)
        if ami is None:
            return
        want = {(m["queue"], m["interface"]): m for m in self._moves.values()
                if m["node"] == node}
        have = {(m.queue, m.interface) for m in (snap.members if snap else [])
                if is_borrowed_interface(m.interface)}
        for q, iface in have - set(want):
            try:
                await ami.queue_remove(q, iface)
                await self._audit_cleanup(q, iface)
            except AmiError as exc:
                log.warning("stale borrowed member not removed", extra={"queue": q,
                                                                        "error": str(exc)})
        for (q, iface), m in want.items():
            if (q, iface) not in have:
                with contextlib.suppress(AmiError):
                    await self._queue_add(ami, m)
            await self._set_state(node, m["agent"], await self.home_state(m["agent"],
                                                                          m["home_node"]))
        for agent, m in self._moves.items():
            if m["home_node"] == node:
                await self._set_state(m["node"], agent, await self.home_state(agent, node))

    async def _pause_home(self, agent: str, home_node: str, city: str) -> bool:
        """Pause a lent agent in every home queue (surge calls first); the reason tells the
        console and is how the return knows the pause is ours to lift."""
        ami = self.ami(home_node)
        if ami is None or not ami.connected:
            return False
        try:
            await ami.queue_pause(f"PJSIP/{agent}", True, reason=f"{PAUSE_REASON}{city}")
            return True
        except AmiError as exc:
            log.warning("lent agent not paused at home", extra={"agent": agent,
                                                                "error": str(exc)})
            return False

    async def _unpause_home(self, agent: str, home_node: str) -> None:
        """Lift the pause only where it is still ours (a break taken meanwhile stays)."""
        ami = self.ami(home_node)
        if ami is None or not ami.connected:
            return
        try:
            status = await ami.send_list({"Action": "QueueStatus", "Member": f"PJSIP/{agent}"})
            for m in status:
                if (m.get("Event") == "QueueMember" and str(m.get("Paused")) == "1"
                        and str(m.get("PausedReason", "")).startswith(PAUSE_REASON)):
                    await ami.queue_pause(f"PJSIP/{agent}", False, queue=str(m.get("Queue")))
        except AmiError as exc:
            log.warning("lent agent not unpaused at home", extra={"agent": agent,
                                                                  "error": str(exc)})

    async def _audit_cleanup(self, queue: str, interface: str) -> None:
        agent = interface.removeprefix("PJSIP/").split("@", 1)[0]
        city, _ = split_queue(queue)
        home = self.cfg.agent(agent).city if agent in {a.id for a in self.cfg.agents} else ""
        await self.audit.record(move_id="cleanup", action="cleanup", agent=agent,
                                from_city=home, to_city=city, queue=queue, by="resync",
                                reason="borrowed member left on a node that was away when "
                                       "the agent was returned", proposal_id=None,
                                at=self.clock(), before=None, after=None)

    async def _queue_add(self, ami: AmiClient, m: dict[str, Any]) -> None:
        await ami.queue_add(m["queue"], m["interface"], penalty=m["penalty"],
                            member_name=m["agent"], state_interface=state_interface(m["agent"]))

    # -- figures ----------------------------------------------------------------------------

    async def refresh_moves(self) -> dict[str, dict[str, Any]]:
        raw = text_map(await self.redis.hgetall(self.key("surge", "moves")))
        self._moves = {a: json.loads(v) for a, v in raw.items()}
        if self._moves:
            self._known_moves = dict(self._moves)
        return self._moves

    async def restore(self) -> int:
        """After Redis lost its data: write back the moves and the policy this service knew,
        so lent agents stay lent (and go home, unpaused, as usual). Returns the moves."""
        moves = self._known_moves
        if moves:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.key("surge", "moves"),
                      mapping={a: json.dumps(m) for a, m in moves.items()})
            for a, m in moves.items():
                pipe.hset(self.live_keys.agent(a), mapping={"borrowed_by": m["to_city"],
                                                         "home_city": m["home_city"]})
            await pipe.execute()
            self._moves = dict(moves)
        if self._known_policy:
            await self.redis.set(self.key("surge", "policy"), json.dumps(self._known_policy),
                                 nx=True)
        if moves or self._known_policy:
            log.warning("surge moves and policy written back to Redis",
                        extra={"moves": len(moves), "policy": bool(self._known_policy)})
        return len(moves)

    async def _agents(self) -> dict[str, tuple[str, set[str]]]:
        """Every configured agent's live state and queues (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for a in self.cfg.agents:
            pipe.hmget(self.live_keys.agent(a.id), ["state", "reason"])
            pipe.hkeys(self.live_keys.agent_queues(a.id))
        res = await pipe.execute()
        out = {}
        for i, a in enumerate(self.cfg.agents):
            state, reason = res[2 * i]
            if state == "paused" and (reason or "").startswith(PAUSE_REASON):
                state = "ready"  # paused at home only because lent: free for the surge
            out[a.id] = (state or "unavailable", set(res[2 * i + 1]))
        return out

    async def _observed(self, queue: str, now: float) -> Observed:
        await self._write_observations()
        lo = now - self.s.window_s
        pipe = self.redis.pipeline(transaction=False)
        for kind in ("arr", "ans", "abn", "aht"):
            pipe.zrangebyscore(self.key("surge", "q", queue, kind), lo, "+inf")
        pipe.zrange(self.live_keys.waiting(queue), 0, 0, withscores=True)
        pipe.zcard(self.live_keys.waiting(queue))
        arr, ans, abn, aht, oldest, waiting = await pipe.execute()
        return Observed(
            arrivals=len(arr), answered_waits=[float(x.rsplit("|", 1)[1]) for x in ans],
            abandoned=len(abn), handle_times=[float(x.rsplit("|", 1)[1]) for x in aht],
            waiting=int(waiting),
            longest_wait_s=max(0.0, now - float(oldest[0][1])) if oldest else 0.0)

    # -- the supervisor's limits -------------------------------------------------------------

    POLICY_KEYS = ("auto", "max_borrowed_per_city", "max_per_move", "floors", "default_floor",
                   "lent_home")

    async def load_policy(self) -> dict[str, Any]:
        """The limits a supervisor set (Redis, shared by every instance) over the config's."""
        raw = await self.redis.get(self.key("surge", "policy"))
        changes = json.loads(raw) if raw else {}
        if changes:
            self._known_policy = changes
        merged = {**self.cfg.surge.model_dump(), **{k: v for k, v in changes.items()
                                                    if k in self.POLICY_KEYS}}
        self.s = SurgeSection.model_validate(merged)
        return changes

    async def set_policy(self, by: str, **changes: Any) -> dict[str, Any]:
        """Change the automatic policy and its limits at run time (audited)."""
        unknown = set(changes) - set(self.POLICY_KEYS)
        if unknown:
            raise SurgeError("invalid", f"not a policy setting: {', '.join(sorted(unknown))}")
        current = await self.load_policy()
        new = {**{k: v for k, v in current.items() if k in self.POLICY_KEYS},
               **{k: v for k, v in changes.items() if v is not None}}
        try:
            SurgeSection.model_validate({**self.cfg.surge.model_dump(), **new})
        except ValueError as exc:
            raise SurgeError("invalid", str(exc).splitlines()[0]) from None
        for city in new.get("floors", {}):
            if city not in {c.id for c in self.cfg.cities}:
                raise SurgeError("invalid", f"unknown city {city!r}")
        await self.redis.set(self.key("surge", "policy"), json.dumps(new))
        self._known_policy = new
        before = {k: getattr(self.s, k) for k in self.POLICY_KEYS}
        await self.load_policy()
        after = {k: getattr(self.s, k) for k in self.POLICY_KEYS}
        await self.audit.record(move_id="policy", action="policy", agent="-", from_city="-",
                                to_city="-", queue="-", by=by, reason="surge policy changed",
                                proposal_id=None, at=self.clock(), before=before, after=after)
        await self.publish({"action": "policy", "by": by, **after})
        return after

    async def figures_all(self) -> dict[str, QueueFigures]:
        await self.load_policy()
        now = self.clock()
        moves = await self.refresh_moves()
        agents = await self._agents()
        shared = {q: json.loads(v) for q, v in
                  (await self.redis.hgetall(self.key("surge", "state"))).items()}
        out: dict[str, QueueFigures] = {}
        for q, (city, skill) in self.watched.items():
            home = idle = 0
            for a in self.cfg.agents:
                state, queues = agents[a.id]
                if a.city != city or q not in queues or state not in PRESENT_STATES:
                    continue
                home += 1
                idle += state in ("ready", "unknown")
            borrowed = [a for a, m in moves.items() if m["queue"] == q]
            b_present = [a for a in borrowed if agents.get(a, ("", set()))[0] in PRESENT_STATES]
            b_idle = [a for a in b_present if agents[a][0] in ("ready", "unknown")]
            lent = [a for a, m in moves.items() if m["home_city"] == city]
            forecast_needed = await self._forecast_needed(city)
            f = figures(self.s, city=city, skill=skill, queue=q,
                        node=self.node_of_city(city), observed=await self._observed(q, now),
                        present=home + len(b_present), home=home, idle=idle + len(b_idle),
                        borrowed_in=borrowed, lent_out=lent,
                        forecast_needed=forecast_needed)
            if q in self.hysteresis.state:
                f.state, f.since = self.hysteresis.state[q], self.hysteresis.since.get(q, 0.0)
            elif q in shared:  # another process (the service) evaluates the surges
                f.state, f.since = shared[q]["state"], shared[q]["since"]
            out[q] = f
        return out

    async def _forecast_needed(self, city: str) -> int:
        """The forecast's agents for the city now; 0 (the live load alone decides) when it
        cannot be read: a surge is not held up by the history's database."""
        if self.forecast is None:
            return 0
        try:
            return await self.forecast(city)
        except Exception as exc:
            log.warning("staffing forecast unavailable",
                        extra={"city": city, "error": str(exc) or type(exc).__name__})
            return 0

    async def status(self) -> dict[str, Any]:
        figs = await self.figures_all()
        cities = []
        for c in self.cfg.cities:
            cities.append({
                "city": c.id, "name": c.name, "node": c.node,
                "node_connected": self.connected(c.node), "floor": self.s.floor_of(c.id),
                "queues": [f.as_dict() for f in figs.values() if f.city == c.id]})
        return {"at": self.clock(), "target": {"service_level": self.s.target_sl,
                                               "seconds": self.s.target_s},
                "auto": self.s.auto, "window_s": self.s.window_s, "cities": cities,
                "limits": {"max_borrowed_per_city": self.s.max_borrowed_per_city,
                           "max_per_move": self.s.max_per_move},
                "moves": sorted(self._moves.values(), key=lambda m: m["at"])}

    # -- proposals --------------------------------------------------------------------------

    def _queue_of(self, city_or_queue: str) -> str:
        if city_or_queue in self.watched:
            return city_or_queue
        q = queue_name(city_or_queue, self.s.skills[0])
        if q in self.watched:
            return q
        raise SurgeError("not_found", f"no watched queue or city {city_or_queue!r}")

    async def _candidates(self, skill: str) -> list[Candidate]:
        agents = await self._agents()
        out = []
        for a in self.cfg.agents:
            skills = self.skills_of(a.id)
            out.append(Candidate(a.id, a.name, a.city, self.node_of_city(a.city),
                                 skills.get(skill, 0), skills, agents[a.id][0],
                                 lent=a.id in self._moves))
        return out

    async def proposal(self, city_or_queue: str, *, limit: int | None = None,
                       count: int | None = None) -> dict[str, Any]:
        """Which agents to lend to a city's (or a queue's) surge; ``count`` asks for that many
        instead of the Erlang C shortfall. Kept in Redis for ``proposal_ttl_s``."""
        q = self._queue_of(city_or_queue)
        figs = await self.figures_all()
        target = figs[q]
        skill = self.watched[q][1]
        donors = [f for f in figs.values() if f.skill == skill and f.city != target.city
                  and self.connected(f.node)]
        picks, notes = plan(self.s, target, donors, await self._candidates(skill), limit=limit,
                             count=count)
        if not self.connected(target.node):
            notes.append(f"node {target.node} of {target.city} is not connected")
            picks = []
        now = self.clock()
        pid = secrets.token_hex(6)
        proposal = {
            "id": pid, "queue": q, "city": target.city, "skill": skill, "created_at": now,
            "expires_at": now + self.s.proposal_ttl_s, "penalty": self.s.borrow_penalty,
            "agents": [{"agent": p.agent_id, "name": p.name, "from_city": p.from_city,
                        "from_node": p.from_node, "level": p.level, "skills": p.skills,
                        "state": p.state} for p in picks],
            "before": target.as_dict(),
            "after": projected(self.s, target, len(picks)),
            "donors": [{"city": d.city, "agents_home": d.agents_home,
                        "agents_needed": d.agents_needed, "lent_out": d.lent_out,
                        "floor": self.s.floor_of(d.city),
                        "after": projected(self.s, d, -sum(1 for p in picks
                                                           if p.from_city == d.city))}
                       for d in donors],
            "reason": self._reason(target), "notes": notes,
        }
        await self.redis.set(self.key("surge", "proposal", pid), json.dumps(proposal),
                             ex=self.s.proposal_ttl_s)
        return proposal

    def _reason(self, f: QueueFigures) -> str:
        sl = "n/a" if f.service_level is None else f"{f.service_level:.0%}"
        return (f"{f.queue}: {f.waiting} waiting, longest {f.longest_wait_s:.0f} s, service "
                f"level {sl} (target {self.s.target_sl:.0%} in {self.s.target_s} s), "
                f"{f.arrivals_per_min:.1f} calls/min × AHT {f.aht_s:.0f} s needs "
                f"{f.agents_needed} agents, {f.agents_present} present")

    # -- moves ------------------------------------------------------------------------------

    async def _lock(self, agents: list[str], by: str) -> list[str]:
        held: list[str] = []
        token = f"{by}:{secrets.token_hex(4)}"
        for a in sorted(set(agents)):
            ok = await self.redis.set(self.key("surge", "lock", "agent", a), token, nx=True,
                                      ex=self.s.lock_ttl_s)
            if not ok:
                await self._unlock(held)
                holder = await self.redis.get(self.key("surge", "lock", "agent", a))
                who = text_or_none(holder) or "?"
                raise SurgeError("conflict", f"agent {a} is being moved by "
                                             f"{who.split(':', 1)[0]}")
            held.append(a)
        return held

    async def _unlock(self, agents: list[str]) -> None:
        if agents:
            await self.redis.delete(*(self.key("surge", "lock", "agent", a) for a in agents))

    async def apply(self, proposal_id: str, by: str) -> dict[str, Any]:
        raw = await self.redis.get(self.key("surge", "proposal", proposal_id))
        if raw is None:
            raise SurgeError("not_found", f"proposal {proposal_id} not found (expired?)")
        p = json.loads(raw)
        agents = [x["agent"] for x in p["agents"]]
        held = await self._lock(agents, by)
        try:
            if not await self.redis.set(self.key("surge", "proposal", proposal_id, "applied"),
                                        by, nx=True, ex=self.s.proposal_ttl_s):
                raise SurgeError("conflict", f"proposal {proposal_id} was already applied")
            try:
                return await self._apply_locked(p, by)
            except BaseException:
                await self.redis.delete(self.key("surge", "proposal", proposal_id, "applied"))
                raise
        finally:
            await self._unlock(held)

    async def _apply_locked(self, p: dict[str, Any], by: str) -> dict[str, Any]:
        moves = await self.refresh_moves()
        for x in p["agents"]:
            if x["agent"] in moves:
                raise SurgeError("conflict", f"agent {x['agent']} is already lent to "
                                             f"{moves[x['agent']]['to_city']}")
        target_node = self.node_of_city(p["city"])
        if not self.connected(target_node):
            raise SurgeError("unavailable", f"node {target_node} of {p['city']} is away")
        figs = await self.figures_all()
        target = figs[p["queue"]]
        # Floors, checked again now (the proposal may be minutes old).
        by_city: dict[str, int] = {}
        for x in p["agents"]:
            by_city[x["from_city"]] = by_city.get(x["from_city"], 0) + 1
        for city, n in by_city.items():
            donor = figs[queue_name(city, p["skill"])]
            left = donor.agents_home - len(donor.lent_out) - n
            if left < self.s.floor_of(city):
                raise SurgeError("floor", f"lending {n} would leave {city} with {left} agents, "
                                          f"below its floor of {self.s.floor_of(city)}")
            if not self.connected(self.node_of_city(city)):
                raise SurgeError("unavailable", f"node of {city} is away")
        ami = self.ami(target_node)
        assert ami is not None
        now = self.clock()
        before = target.as_dict()
        after = projected(self.s, target, len(p["agents"]))
        done = []
        for x in p["agents"]:
            agent, home_node = x["agent"], x["from_node"]
            move = {"move_id": secrets.token_hex(6), "agent": agent, "name": x["name"],
                    "home_city": x["from_city"], "home_node": home_node,
                    "to_city": p["city"], "queue": p["queue"], "node": target_node,
                    "interface": borrowed_interface(agent, home_node),
                    "penalty": p["penalty"], "by": by, "at": now, "proposal": p["id"]}
            # The state first, so the queue never rings an agent busy at home.
            await self._set_state(target_node, agent, await self.home_state(agent, home_node))
            try:
                await self._queue_add(ami, move)
            except AmiError as exc:
                if "Already there" not in str(exc):
                    raise SurgeError("unavailable", f"{agent}: {exc}") from exc
            if self.s.lent_home == "pause":
                move["paused_home"] = await self._pause_home(agent, home_node, p["city"])
            await self.redis.hset(self.key("surge", "moves"), agent, json.dumps(move))
            self._moves[agent] = move
            self._known_moves[agent] = move
            await self.redis.hset(self.live_keys.agent(agent), mapping={
                "borrowed_by": p["city"], "home_city": x["from_city"]})
            await self.audit.record(move_id=move["move_id"], action="borrow", agent=agent,
                                    from_city=x["from_city"], to_city=p["city"],
                                    queue=p["queue"], by=by, reason=p["reason"],
                                    proposal_id=p["id"], at=now, before=before, after=after)
            await self.publish({"action": "borrow", **move})
            done.append(move)
        # A supervisor's move counts as a surge: it is returned after exit_after_s of calm.
        self.hysteresis.force(p["queue"], "surge", now)
        log.info("agents lent", extra={"queue": p["queue"], "agents": [m["agent"] for m in done],
                                       "by": by})
        return {"proposal": p["id"], "queue": p["queue"], "moved": done, "before": before,
                "after": after}

    async def return_agents(self, agent_ids: list[str], by: str,
                            reason: str = "returned by hand") -> dict[str, Any]:
        moves = await self.refresh_moves()
        unknown = [a for a in agent_ids if a not in moves]
        if unknown and len(unknown) == len(agent_ids):
            raise SurgeError("not_found", f"not lent: {', '.join(unknown)}")
        held = await self._lock([a for a in agent_ids if a in moves], by)
        returned, pending = [], []
        try:
            figs = await self.figures_all()
            now = self.clock()
            for a in agent_ids:
                move = self._moves.get(a)
                if move is None:
                    continue
                target = figs.get(move["queue"])
                before = target.as_dict() if target else None
                after = projected(self.s, target, -1) if target else None
                ami = self.ami(move["node"])
                # Removing the member never ends a call in progress: the agent finishes it.
                try:
                    if ami is None or not ami.connected:
                        raise AmiError("QueueRemove", "node away")
                    await ami.queue_remove(move["queue"], move["interface"])
                except AmiError as exc:
                    if "Not there" not in str(exc):
                        pending.append(a)  # removed when the node comes back (resync)
                if move.get("paused_home"):
                    await self._unpause_home(a, move["home_node"])
                await self.redis.hdel(self.key("surge", "moves"), a)
                self._moves.pop(a, None)
                self._known_moves.pop(a, None)
                await self.redis.hdel(self.live_keys.agent(a), "borrowed_by", "home_city")
                await self.audit.record(move_id=move["move_id"], action="return", agent=a,
                                        from_city=move["home_city"], to_city=move["to_city"],
                                        queue=move["queue"], by=by, reason=reason,
                                        proposal_id=move.get("proposal"), at=now,
                                        before=before, after=after)
                await self.publish({"action": "return", **move, "by": by})
                returned.append(a)
        finally:
            await self._unlock(held)
        log.info("agents returned", extra={"agents": returned, "by": by})
        return {"returned": returned, "not_lent": unknown, "cleanup_pending": pending}

    async def moves(self, limit: int = 50) -> list[dict[str, Any]]:
        return await self.audit.latest(limit)

    # -- the policy ---------------------------------------------------------------------------

    async def tick(self) -> dict[str, str]:
        """Update each queue's surge state; with ``auto``, borrow for surging queues; return
        lent agents once their queue has been calm long enough (any move, auto or by hand)."""
        self.ticks += 1
        figs = await self.figures_all()
        now = self.clock()
        states = {}
        for q, f in figs.items():
            # A move made elsewhere (the command line, another instance) after this queue last
            # calmed down counts as a surge too: returned only after exit_after_s of calm.
            if self.hysteresis.state.get(q, "normal") == "normal" and any(
                    self._moves[a]["at"] > self.hysteresis.since.get(q, 0.0)
                    for a in f.borrowed_in):
                self.hysteresis.force(q, "surge", now)
            states[q] = self.hysteresis.update(q, pressure=f.pressure, calm=f.calm, now=now)
        await self.redis.hset(self.key("surge", "state"), mapping={
            q: json.dumps({"state": s, "since": self.hysteresis.since.get(q, now)})
            for q, s in states.items()})
        for q, f in figs.items():
            if states[q] == "normal" and f.borrowed_in and f.calm and not f.pressure:
                due = list(f.borrowed_in)
                if due:
                    with contextlib.suppress(SurgeError):
                        await self.return_agents(due, "auto", reason=(
                            f"surge over: {self._reason(f)}"))
                        self.auto_returns += len(due)
            elif self.s.auto and states[q] == "surge" and (f.shortfall > 0 or f.pressure):
                p = await self.proposal(q)
                if p["agents"]:
                    with contextlib.suppress(SurgeError):
                        await self.apply(p["id"], "auto")
                        self.auto_moves += len(p["agents"])
        return states
