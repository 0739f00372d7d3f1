"""监听、耳语、强插: a supervisor's desk phone joins an agent's call (docs/monitoring.md).

The wallboard names an agent and a mode; this room finds the agent's answered call in the
node's call tracker, rings the supervisor's phone by AMI Originate into the ``hotline-spy``
dialplan context, and the phone, once answered, runs ChanSpy on the agent's channel::

    session = await monitoring.join("1001", phone="9001", supervisor="sup", mode="listen")
    await monitoring.switch(session.session_id, "whisper", supervisor="sup")  # no hang-up
    await monitoring.leave(session.session_id, supervisor="sup")

Modes (ChanSpy's own): ``listen`` the supervisor hears caller and agent, nobody hears the
supervisor; ``whisper`` only the agent hears the supervisor; ``barge`` everyone hears
everyone. A switch is ChanSpy's DTMF mode change (4, 5, 6) sent to the supervisor's channel
as if received (AMI PlayDTMF, Receive): the phone stays up, the audio never stops.

Each change is published on ``<prefix>:events`` (type ``monitoring``) with ``agent_sees``,
the [supervision] policy that says whether the agent's console is told; the wallboard shows
every session to supervisors either way. Who may start one, and the audit log, are the web
side's (agent_desk/supervision).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from common import events as ev
from common.config import Config
from common.errors import DomainError
from common.outcomes import BUSY, FAILED, NO_ANSWER
from telephony.ami import AmiError

log = logging.getLogger(__name__)

CONTEXT = "hotline-spy"  # asterisk-conf/extensions.conf.j2
MODES = ("listen", "whisper", "barge")
# ChanSpy's d option: these digits switch the mode of a running ChanSpy.
DIGITS = {"listen": "4", "whisper": "5", "barge": "6"}


class MonitoringError(DomainError):
    """A request that does not fit now (the console answers 409/404). ``code``: no_call,
    no_phone, other_node, busy, no_session, not_yours, not_answered, bad_mode, unavailable."""


class AgentLegView(Protocol):
    @property
    def agent_id(self) -> str: ...
    @property
    def uniqueid(self) -> str: ...
    @property
    def answered_at(self) -> float | None: ...
    @property
    def ended(self) -> bool: ...


class TrackedCall(Protocol):
    @property
    def ended(self) -> bool: ...
    @property
    def case(self) -> str | None: ...
    @property
    def agents(self) -> Mapping[str, AgentLegView]: ...


class TrackedCalls(Protocol):
    @property
    def calls(self) -> Mapping[str, TrackedCall]: ...


class Ami(Protocol):
    async def originate(self, *, channel: str, context: str | None = ...,
                        exten: str | None = ..., priority: int = ...,
                        application: str | None = ..., data: str | None = ...,
                        caller_id: str | None = ..., timeout_s: float = ...,
                        variables: dict[str, str] | None = ..., channel_id: str | None = ...,
                        other_channel_id: str | None = ..., early_media: bool = ...
                        ) -> Any: ...
    async def send(self, action: dict[str, Any], *, timeout: float | None = ...) -> Any: ...
    async def hangup(self, channel: str, cause: int = ...) -> Any: ...


Publish = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(eq=False)
class MonitoringSession:
    """One supervisor on one agent's call."""

    session_id: str  # the supervisor's channel's uniqueid (given at Originate)
    node: str
    supervisor: str  # the console user
    phone: str  # the desk phone's extension
    agent_id: str
    agent_uid: str
    call_id: str
    case_number: str | None
    mode: str
    state: str = "ringing"  # ringing -> active -> ended
    outcome: str | None = None  # answered | no_answer | busy | failed
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    # Every mode the session was in, with when it began (the first one at the answer).
    modes: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    def snapshot(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "supervisor": self.supervisor,
                "phone": self.phone, "agent": self.agent_id, "call_id": self.call_id,
                "case": self.case_number, "mode": self.mode, "state": self.state,
                "outcome": self.outcome, "started_at": self.started_at,
                "answered_at": self.answered_at, "ended_at": self.ended_at,
                "modes": [{"mode": m, "at": at} for m, at in self.modes]}


class Monitoring:
    """Monitoring sessions on every node. ``on_event`` must see each node's AMI events."""

    def __init__(self, cfg: Config, *, ami_of: Callable[[str], Ami],
                 tracker_of: Callable[[str], TrackedCalls], publish: Publish | None = None):
        self.cfg = cfg
        self.ami_of = ami_of
        self.tracker_of = tracker_of
        self.publish = publish
        self.sessions: dict[str, MonitoringSession] = {}
        self._ended: dict[str, MonitoringSession] = {}  # kept a while for the wallboard

    @property
    def agent_sees(self) -> bool:
        return self.cfg.supervision.agent_sees_monitoring

    # -- actions ---------------------------------------------------------------------------

    async def join(self, agent_id: str, *, phone: str, supervisor: str, mode: str
                   ) -> MonitoringSession:
        """Ring the supervisor's phone; once answered it is on the agent's call in ``mode``."""
        if mode not in MODES:
            raise MonitoringError("bad_mode", f"mode: one of {', '.join(MODES)}")
        node, call_id, call, leg = self._agent_call(agent_id)
        phone_node = self._phone_node(phone)
        if phone_node != node:
            raise MonitoringError("other_node", f"the call is on node {node}, the phone "
                                                f"{phone} on {phone_node}")
        for s in self.sessions.values():
            if s.phone == phone:
                raise MonitoringError("busy", f"phone {phone} is already on agent "
                                              f"{s.agent_id}'s call")
        session = MonitoringSession(
            session_id=f"spy-{secrets.token_hex(6)}", node=node, supervisor=supervisor,
            phone=phone, agent_id=agent_id, agent_uid=leg.uniqueid, call_id=call_id,
            case_number=call.case, mode=mode)
        self.sessions[session.session_id] = session
        try:
            await self.ami_of(node).originate(
                channel=f"PJSIP/{phone}", context=CONTEXT, exten=mode,
                timeout_s=self.cfg.supervision.ring_timeout_s,
                caller_id=f'"{agent_id}" <{agent_id}>', channel_id=session.session_id,
                variables={"HOTLINE_SPY_TARGET": leg.uniqueid})
        except AmiError as exc:
            del self.sessions[session.session_id]
            raise MonitoringError("unavailable", f"Asterisk did not ring the phone: {exc}"
                                  ) from exc
        log.info("monitoring: ringing the supervisor", extra={
            "call_id": call_id, "agent": agent_id, "phone": phone, "mode": mode,
            "session": session.session_id})
        await self._announce(session)
        return session

    async def switch(self, session_id: str, mode: str, *, supervisor: str
                     ) -> MonitoringSession:
        if mode not in MODES:
            raise MonitoringError("bad_mode", f"mode: one of {', '.join(MODES)}")
        session = self._own(session_id, supervisor)
        if session.state != "active":
            raise MonitoringError("not_answered", "the supervisor's phone has not answered")
        if mode == session.mode:
            return session
        try:
            await self.ami_of(session.node).send({
                "Action": "PlayDTMF", "Channel": session.session_id, "Digit": DIGITS[mode],
                "Duration": "120", "Receive": "true"})
        except AmiError as exc:
            raise MonitoringError("unavailable", f"the mode was not changed: {exc}") from exc
        session.mode = mode
        session.modes.append((mode, time.time()))
        log.info("monitoring: mode changed", extra={
            "call_id": session.call_id, "session": session_id, "mode": mode})
        await self._announce(session)
        return session

    async def leave(self, session_id: str, *, supervisor: str) -> MonitoringSession:
        """Hang up the supervisor's phone (the call goes on)."""
        session = self._own(session_id, supervisor)
        with contextlib.suppress(AmiError):  # already gone: its Hangup ends the session
            await self.ami_of(session.node).hangup(session.session_id)
        return session

    def active(self) -> list[MonitoringSession]:
        return list(self.sessions.values())

    def recent(self) -> list[MonitoringSession]:
        return [*self._ended.values(), *self.sessions.values()]

    def session(self, session_id: str) -> MonitoringSession | None:
        return self.sessions.get(session_id) or self._ended.get(session_id)

    def of_agent(self, agent_id: str) -> MonitoringSession | None:
        """The session on this agent's call now (answered), if any."""
        return next((s for s in self.sessions.values()
                     if s.agent_id == agent_id and s.state == "active"), None)

    # -- lookups ---------------------------------------------------------------------------

    def _own(self, session_id: str, supervisor: str) -> MonitoringSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise MonitoringError("no_session", "no such monitoring session (it has ended)")
        if session.supervisor != supervisor:
            raise MonitoringError("not_yours", "another supervisor's monitoring session")
        return session

    def _phone_node(self, phone: str) -> str:
        sup = next((p for p in self.cfg.supervisors if p.id == phone), None)
        if sup is None:
            raise MonitoringError("no_phone", f"no supervisor's phone {phone}")
        return self.cfg.city(sup.city).node

    def _agent_call(self, agent_id: str
                    ) -> tuple[str, str, TrackedCall, AgentLegView]:
        """The agent's answered call now, on whichever node it is."""
        found: list[tuple[float, str, str, TrackedCall, AgentLegView]] = []
        for node in self._nodes():
            for call_id, call in self.tracker_of(node).calls.items():
                if call.ended:
                    continue
                for leg in call.agents.values():
                    if leg.agent_id == agent_id and leg.answered_at is not None \
                            and not leg.ended:
                        found.append((leg.answered_at, node, call_id, call, leg))
        if not found:
            raise MonitoringError("no_call", f"agent {agent_id} is not on a call")
        _, node, call_id, call, leg = max(found, key=lambda f: f[0])
        return node, call_id, call, leg

    def _nodes(self) -> Iterable[str]:
        return [n.id for n in self.cfg.nodes]

    # -- AMI events ------------------------------------------------------------------------

    async def on_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.Hangup):
            session = self.sessions.get(event.channel.uniqueid)
            if session is not None and session.node == event.node:
                await self._end(session, event.received_at, cause=event.cause)
        elif isinstance(event, ev.OtherEvent) and event.name == "OriginateResponse":
            session = self.sessions.get(str(event.fields.get("Uniqueid", "")))
            if session is None or session.node != event.node:
                return
            if event.fields.get("Response") == "Success":
                await self._answered(session, event.received_at)
            else:
                reason = str(event.fields.get("Reason", ""))
                await self._end(session, event.received_at, reason=reason)
        elif isinstance(event, ev.OtherEvent) and event.name == "ChanSpyStart":
            session = self.sessions.get(str(event.fields.get("SpyerUniqueid", "")))
            if session is not None and session.state == "ringing":
                await self._answered(session, event.received_at)
        elif isinstance(event, ev.Connected) and event.snapshot is not None:
            # Sessions whose phone vanished while AMI was away are over.
            live = {c.channel.uniqueid for c in event.snapshot.channels}
            for session in [s for s in self.sessions.values() if s.node == event.node]:
                if session.session_id not in live:
                    await self._end(session, event.snapshot.taken_at)

    async def _answered(self, session: MonitoringSession, at: float) -> None:
        if session.state != "ringing":
            return
        session.state, session.answered_at, session.outcome = "active", at, "answered"
        session.modes.append((session.mode, at))
        log.info("monitoring: supervisor on the call", extra={
            "call_id": session.call_id, "session": session.session_id,
            "mode": session.mode})
        await self._announce(session)

    async def _end(self, session: MonitoringSession, at: float, *, cause: int | None = None,
                   reason: str = "") -> None:
        if session.ended:
            return
        if session.outcome is None:
            if cause == 17 or reason == "5":
                session.outcome = BUSY
            elif cause in (18, 19) or reason == "3":
                session.outcome = NO_ANSWER
            else:
                session.outcome = FAILED
        session.state, session.ended_at = "ended", at
        self.sessions.pop(session.session_id, None)
        self._ended[session.session_id] = session
        while len(self._ended) > 200:
            self._ended.pop(next(iter(self._ended)))
        log.info("monitoring ended", extra={
            "call_id": session.call_id, "session": session.session_id,
            "outcome": session.outcome})
        await self._announce(session)

    async def _announce(self, session: MonitoringSession) -> None:
        if self.publish is None:
            return
        try:
            await self.publish("monitoring", {**session.snapshot(),
                                              "agent_sees": self.agent_sees})
        except Exception as exc:
            log.warning("monitoring state not published", extra={"error": str(exc)})

    async def start(self) -> None:
        """Nothing runs before the first request."""

    async def stop(self) -> None:
        """Sessions are Asterisk's calls: they end with their phones."""
