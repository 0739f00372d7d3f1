"""Asterisk's own call records (CEL), read after outages.

While the service is down or cut off from AMI, Asterisk goes on taking calls and writes every
channel event to its CEL database. The reconciler reads it (from a checkpoint), rebuilds the
facts of each finished call, and hands them to the same sinks as the live tracker — so a call
that began and ended while the service was away still gets its case, complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common.facts import CallFact, Sink, agent_of, call_id_of, trunk_of
from common.outcomes import classify_failure
from common.tasks import cancel_and_wait
from telephony.calls.keep_place import CEL_EVENT as KEEP_EVENT
from telephony.calls.keep_place import PLACEHOLDER, facts_from_cel_event
from telephony.calls.rating import NOT_RATED, rating_of, unrated_why

# [hotline-nobody]'s CEL user events and the facts they make (the tracker hears the same
# as channel variables: telephony/calls/tracker.py CHOICE_VARIABLES).
CHOICE_EVENTS = {"HOTLINE_NOBODY": "nobody", "HOTLINE_CALLBACK_REQUEST": "callback_requested",
                 "HOTLINE_MESSAGE": "message", "HOTLINE_KEEP_PLACE": "keep_place"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CelRow:
    id: int
    event: str
    at: float
    cid_name: str
    cid_num: str
    context: str
    exten: str
    channel: str
    app: str
    appdata: str
    uniqueid: str
    linkedid: str
    peer: str
    userdeftype: str
    extra: dict[str, Any] = field(default_factory=dict)


_COLUMNS = ("AcctId, eventtype, eventtime, cidname, cidnum, context, exten, channame, appname,"
            " appdata, uniqueid, linkedid, peer, userdeftype, eventextra")


def read_cel(path: Path, after_id: int, limit: int = 20000, *,
             linkedid: str | None = None) -> list[CelRow]:
    """Rows after ``after_id`` (or all rows of one call); sync, run it in a thread.
    A missing file or table means no rows yet."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        try:
            if linkedid is not None:
                cur = conn.execute(f"SELECT {_COLUMNS} FROM cel WHERE linkedid = ?"
                                   " ORDER BY AcctId", (linkedid,))
            else:
                cur = conn.execute(f"SELECT {_COLUMNS} FROM cel WHERE AcctId > ?"
                                   " ORDER BY AcctId LIMIT ?", (after_id, limit))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        rows = []
        for r in cur:
            try:
                extra = json.loads(r[14]) if r[14] else {}
            except ValueError:
                extra = {"raw": r[14]}
            try:
                at = float(r[2])
            except (TypeError, ValueError):
                continue
            (cid_name, cid_num, context, exten, channel, app, appdata, uniqueid, linkedid, peer,
             userdeftype) = (str(x or "") for x in r[3:14])
            rows.append(CelRow(int(r[0]), str(r[1]), at, cid_name, cid_num, context, exten,
                               channel, app, appdata, uniqueid, linkedid, peer, userdeftype,
                               extra=extra if isinstance(extra, dict) else {}))
        return rows
    finally:
        conn.close()


def last_cel_id(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(AcctId), 0) FROM cel").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def facts_from_cel(node: str, rows: list[CelRow], *, finished: bool = True,
                   dead: bool = False) -> list[CallFact]:
    """The facts of one call (all rows of one linkedid, in order).

    ``finished=False``: the call is still up (adopted after a reconnect): only its history so
    far, no end. ``dead=True``: the call is gone but Asterisk never recorded its end (it was
    killed): its history, then an ``orphaned`` end at its last known moment.
    """
    if not rows:
        return []
    linked = rows[0].linkedid
    cid = call_id_of(node, linked)
    start = next((r for r in rows if r.event == "CHAN_START" and r.uniqueid == linked), None)
    if start is not None and TRANSFER_LEG.match(linked):
        return transfer_facts_from_cel(node, rows, start)
    if start is None or trunk_of(start.channel) is None:
        return []  # not an inbound call (an agent's own call, an originate, ...)

    def fact(kind: str, at: float, **data: Any) -> CallFact:
        return CallFact(kind, cid, node, at, data, "cel")

    facts = [fact("arrived", start.at, caller=start.cid_num, caller_name=start.cid_name,
                  dialed=start.exten, trunk=trunk_of(start.channel), uniqueid=linked,
                  channel=start.channel)]
    caller_uid = linked
    queued_at: float | None = None
    queue: str | None = None
    answered: dict[str, float] = {}
    agents: dict[str, str] = {}
    first_answer: float | None = None
    caller_left_bridge: float | None = None
    hangups: list[CelRow] = []
    end: CelRow | None = None
    rated = False
    nobody: set[str] = set()
    for r in rows:
        agent = agent_of(r.channel) if r.uniqueid != caller_uid else None
        if r.userdeftype == "HOTLINE_FALLBACK":  # eventtype holds the user event's name
            facts.append(fact("fallback", r.at, status=str(r.extra.get("extra", ""))))
        elif r.userdeftype == "HOTLINE_RATED" and not rated:
            rated = True
            key = str(r.extra.get("extra", ""))[:4]
            rating = rating_of(key)
            facts.append(fact("rated", r.at, rating=rating, key=key,
                              why="" if rating != NOT_RATED else (
                                  "no_key" if not key else "invalid_key")))
        elif r.userdeftype in CHOICE_EVENTS and CHOICE_EVENTS[r.userdeftype] not in nobody:
            nobody.add(CHOICE_EVENTS[r.userdeftype])
            facts.append(fact(CHOICE_EVENTS[r.userdeftype], r.at,
                              status=str(r.extra.get("extra", ""))[:64]))
        elif r.event == "APP_START" and r.app == "Queue" and r.uniqueid == caller_uid:
            queue = r.appdata.split(",", 1)[0]
            queued_at = queued_at or r.at
            facts.append(fact("queued", r.at, queue=queue))
        elif r.event == "CHAN_START" and agent:
            agents[r.uniqueid] = agent
            facts.append(fact("ringing", r.at, agent=agent, queue=queue, uniqueid=r.uniqueid,
                              channel=r.channel))
        elif r.event == "BRIDGE_ENTER" and agent and r.uniqueid not in answered:
            answered[r.uniqueid] = r.at
            hold = (r.at - queued_at) if queued_at else 0.0
            if first_answer is None:
                first_answer = r.at
                facts.append(fact("answered", r.at, agent=agent, queue=queue,
                                  uniqueid=r.uniqueid, channel=r.channel, hold_time=hold))
        elif r.event == "BRIDGE_EXIT" and r.uniqueid == caller_uid and first_answer:
            caller_left_bridge = caller_left_bridge or r.at
        elif r.event == "HANGUP":
            hangups.append(r)
            if agent:
                if r.uniqueid not in answered:
                    facts.append(fact("ring_noanswer", r.at, agent=agent, uniqueid=r.uniqueid,
                                      ring_time=0.0))
                facts.append(fact("leg_ended", r.at, uniqueid=r.uniqueid, channel=r.channel,
                                  cause=int(r.extra.get("hangupcause") or 0), agent=agent))
        elif r.event == "CHAN_END" and r.uniqueid == caller_uid:
            end = r
    if not finished:
        return facts
    if dead:
        facts.append(fact("orphaned", rows[-1].at, reason="no end recorded by Asterisk"))
        return facts
    caller_hangup = next((h for h in hangups if h.uniqueid == caller_uid), None)
    source = str((hangups[0].extra.get("hangupsource") if hangups else "") or "")
    if source == start.channel:
        hangup_by = "caller"
    elif agent_of(source):
        hangup_by = "agent"
    else:
        hangup_by = "system"
    if first_answer is not None:
        talk_end = caller_left_bridge or (end.at if end else first_answer)
        facts.append(fact("completed", talk_end, talk_time=max(0.0, talk_end - first_answer),
                          reason=hangup_by))
    elif queued_at is not None and caller_hangup is not None and not nobody:
        # (A caller offered a callback or a message left the queues before hanging up.)
        facts.append(fact("abandoned", caller_hangup.at, queue=queue,
                          hold_time=caller_hangup.at - queued_at))
    end_at = end.at if end else (caller_hangup.at if caller_hangup else rows[-1].at)
    cause = int(caller_hangup.extra.get("hangupcause") or 0) if caller_hangup else 0
    if first_answer is not None and not rated:
        facts.append(fact("rated", end_at, rating=NOT_RATED, key="",
                          why=unrated_why(hangup_by)))
    facts.append(fact("ended", end_at, cause=cause, hangup_by=hangup_by))
    return facts


# A transfer leg's channel: its uniqueid (and so its linkedid) is "<call's linkedid>-x<n><hex4>"
# (telephony.transfers.services), on a destination's trunk "PJSIP/dest-<id>-<seq>".
TRANSFER_LEG = re.compile(r"^(?P<call>.+)-x[0-9]+[0-9a-f]{4}$")
DEST_PREFIX = "PJSIP/dest-"


def transfer_facts_from_cel(node: str, rows: list[CelRow], start: CelRow) -> list[CallFact]:
    """The facts of one transfer leg, for its call, as the live service reports them (same
    keys): a leg dialled, answered or ended while the service was away still reaches the case,
    and one it saw is not counted twice."""
    leg = start.linkedid
    m = TRANSFER_LEG.match(leg)
    if m is None or not start.channel.startswith(DEST_PREFIX):
        return []
    cid = call_id_of(node, m.group("call"))
    dest = start.channel[len(DEST_PREFIX):].rsplit("-", 1)[0]

    def fact(kind: str, at: float, **data: Any) -> CallFact:
        return CallFact(kind, cid, node, at, {"leg": leg, **data}, "cel")

    facts = [fact("transfer_dialing", start.at, destination=dest),
             fact("transfer_ringing", start.at, channel=start.channel)]
    mine = [r for r in rows if r.uniqueid == leg]
    answer = next((r for r in mine if r.event == "ANSWER"), None)
    hangup = next((r for r in mine if r.event == "HANGUP"), None)
    end = next((r for r in mine if r.event == "CHAN_END"), None) or hangup
    cause = int(hangup.extra.get("hangupcause") or 0) if hangup else None
    if answer is not None:
        facts.append(fact("transfer_answered", answer.at, channel=start.channel))
        if end is not None:
            source = str(hangup.extra.get("hangupsource") or "") if hangup else ""
            facts.append(fact("transfer_ended", end.at, outcome="answered", cause=cause,
                              ended_by="destination" if source == start.channel else None))
    elif end is not None:
        outcome, reason = classify_failure(channel_seen=True, dial_status="", cause=cause,
                                           originate_reason=None, timeout_s=0)
        facts.append(fact("transfer_failed", end.at, outcome=outcome, reason=reason,
                          cause=cause))
    return facts


class CheckpointStore(Protocol):
    async def get_checkpoint(self, node: str) -> int: ...
    async def set_checkpoint(self, node: str, cel_id: int) -> None: ...
    async def calls_needing_cel(self, call_ids: list[str]) -> set[str]: ...
    async def legs_needing_cel(self, leg_ids: list[str]) -> set[str]: ...


LiveLinkedIds = Callable[[], Awaitable[set[str] | None]]


class CelReconciler:
    """Finishes, from CEL, the calls the live tracker could not see end.

    ``live_ids`` tells which linkedids Asterisk still has (None when unknown, e.g. AMI down):
    a call that is neither finished in CEL nor live has died with Asterisk, and is closed as
    such instead of holding the checkpoint back for ever.
    """

    DEAD_AFTER_S = 10.0

    def __init__(self, node: str, path: Path, store: CheckpointStore, sinks: Sequence[Sink],
                 interval_s: float = 30.0, live_ids: LiveLinkedIds | None = None,
                 leg_grace_s: float = 15.0):
        self.node = node
        self.path = path
        self.store = store
        self.sinks = sinks
        self.interval_s = interval_s
        self.live_ids = live_ids
        # A transfer leg just ended is the live service's to record (it knows more: who
        # cancelled, who hung up); CEL takes it only once it is this old.
        self.leg_grace_s = leg_grace_s
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.calls_completed = 0

    async def _apply(self, facts: list[CallFact]) -> None:
        for fact in facts:
            for sink in self.sinks:
                await sink(fact)

    async def _rows_of(self, linkedid: str, rows: list[CelRow]) -> list[CelRow]:
        if rows and rows[0].event == "CHAN_START" and rows[0].uniqueid == linkedid:
            return rows
        # The call began before the checkpoint: read all of it.
        return await asyncio.to_thread(read_cel, self.path, 0, linkedid=linkedid)

    async def backfill(self, linkedids: set[str]) -> None:
        """History so far of calls still up (adopted at a resync): exact arrival, queue and
        answer times instead of estimates."""
        for lk in linkedids:
            rows = await asyncio.to_thread(read_cel, self.path, 0, linkedid=lk)
            await self._apply(facts_from_cel(self.node, rows, finished=False))

    async def sweep(self, live: set[str] | None = None) -> int:
        """Read new CEL rows; apply the facts of finished (or dead) calls whose case is not
        complete. Returns how many calls it completed."""
        async with self._lock:
            if live is None and self.live_ids is not None:
                try:
                    live = await self.live_ids()
                except Exception:
                    live = None
            after = await self.store.get_checkpoint(self.node)
            rows = await asyncio.to_thread(read_cel, self.path, after)
            if not rows:
                return 0
            by_linked: dict[str, list[CelRow]] = {}
            for r in rows:
                by_linked.setdefault(r.linkedid, []).append(r)
            now = time.time()
            finished = {lk for lk, rs in by_linked.items()
                        if any(r.event == "LINKEDID_END" for r in rs)
                        and not (TRANSFER_LEG.match(lk) and now - rs[-1].at < self.leg_grace_s)}
            dead = set()
            if live is not None:
                dead = {lk for lk, rs in by_linked.items()
                        if lk not in finished and lk not in live
                        and not any(r.event == "LINKEDID_END" for r in rs)
                        and now - rs[-1].at > self.DEAD_AFTER_S}
            # A call's rows may begin before the checkpoint if we stopped mid-call: only move
            # the checkpoint past calls that are over.
            open_first = [rs[0].id for lk, rs in by_linked.items()
                          if lk not in finished and lk not in dead]
            new_checkpoint = (min(open_first) - 1) if open_first else rows[-1].id
            over = finished | dead
            legs = {lk for lk in over if TRANSFER_LEG.match(lk)}
            need = await self.store.calls_needing_cel(
                [call_id_of(self.node, lk) for lk in over - legs])
            if legs:
                need |= {call_id_of(self.node, lk)
                         for lk in await self.store.legs_needing_cel(sorted(legs))}
            done = 0
            for lk in over:
                rs = by_linked[lk]
                if any(r.channel.startswith(PLACEHOLDER) for r in rs):
                    # Keep my place: its steps belong to the caller's call (same keys as the
                    # live reports: applied once).
                    await self._apply([f for r in rs if r.userdeftype == KEEP_EVENT
                                       for f in facts_from_cel_event(
                                           self.node, str(r.extra.get("extra", "")), r.at)])
                    continue
                if call_id_of(self.node, lk) not in need:
                    continue
                rs = await self._rows_of(lk, by_linked[lk])
                facts = facts_from_cel(self.node, rs, dead=lk in dead)
                await self._apply(facts)
                done += bool(facts)
            if new_checkpoint > after:
                await self.store.set_checkpoint(self.node, new_checkpoint)
            if done:
                log.info("calls completed from Asterisk's CEL", extra={
                    "node": self.node, "calls": done, "dead": len(dead)})
            self.calls_completed += done
            return done

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("CEL sweep failed", extra={"node": self.node})

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"cel-{self.node}")

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait([self._task], what=f"cel-{self.node}")
            self._task = None
