"""One Asterisk node, wired: its AMI client and the handlers of its events, in order
(membership, calls, transfers, live state, transcripts, surge), each room's part for this
node built with the service's shared parts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from common import events as ev
from common.config import Config, NodeConfig
from common.facts import Sink
from common.metrics import UNSERVED, Metrics
from queueing.membership import plugin as membership_plugin
from queueing.membership.sync import MembershipSync
from telephony.ami import AmiClient
from telephony.calls.cel import CelReconciler
from telephony.calls.plugin import CallsPlugin, CaseRecords
from telephony.calls.tracker import CallTracker
from telephony.live.recovery import REDIS_DOWN, RedisHealth
from telephony.live.replay import CallSummaries, NodeLive
from telephony.live.state import LiveState

log = logging.getLogger(__name__)

Handler = Callable[[ev.DomainEvent], Awaitable[None]]


class NodeCases(CaseRecords, CallSummaries, Protocol):
    """The case store, as one node's rooms use it."""


class NodeRuntime:
    """Everything the service keeps for one Asterisk node. Its AMI client calls its own
    ``_on_event``, which only runs the handlers once the client is started, when every part
    exists."""

    def __init__(self, cfg: Config, node: NodeConfig, *, cel: Path, cases: NodeCases,
                 live: LiveState, health: RedisHealth, sinks: Sequence[Sink],
                 case_of: Callable[[str], str | None], skills_of: Callable[[str], dict[str, int]],
                 signed_in: Callable[[str], bool], transfers: Handler, transcripts: Handler,
                 surge: Handler, ami_secret: str, monitoring: Handler | None = None,
                 ami_address: tuple[str, int] | None = None,
                 ami_options: dict[str, object] | None = None, cel_interval_s: float = 30.0,
                 cel_from_now: bool = False, metrics: Metrics = UNSERVED) -> None:
        # ``sinks``: where the tracker's call facts go (the case store, then the live state);
        # ``transfers``, ``transcripts``, ``surge``, ``monitoring``: the service-wide handlers
        # of its events.
        self.node = node
        self.health = health
        self.events_handled = 0
        host, port = ami_address or node.ami_endpoint()
        self.ami = AmiClient(node=node.id, host=host, port=port, username=node.ami_username,
                             secret=ami_secret, subscriber=self._on_event,
                             ssl=node.ami_ssl_context(cfg.base_dir),
                             server_hostname=node.ami_server_name, metrics=metrics,
                             **(ami_options or {}))  # type: ignore[arg-type]  # tuning kwargs
        # The live state's buffered writes go out when the client has caught up.
        self.ami.flushers.append(live.flush)
        self.calls = CallsPlugin(node.id, cel, cases, self.ami, sinks=sinks, case_of=case_of,
                                 interval_s=cel_interval_s, cel_from_now=cel_from_now)
        self.membership: MembershipSync = membership_plugin.build(
            cfg, node.id, lambda: self.ami, skills_of=skills_of, signed_in=signed_in)
        self.live = NodeLive(node.id, live, self.calls.tracker, cases, self.ami)
        # Membership first: a resync must put agents back before calls are reconciled; the
        # live state after the tracker, whose view corrects each snapshot. Each handler on
        # its own: Redis away must not keep the case records from their facts.
        self._handlers: tuple[tuple[str, Handler], ...] = (
            ("membership", self.membership.on_event), ("calls", self.tracker.handle),
            ("callcontrol", transfers), ("live", self.live.on_event),
            ("transcripts", transcripts), ("surge", surge),
            *((("monitoring", monitoring),) if monitoring is not None else ()))

    @property
    def tracker(self) -> CallTracker:
        return self.calls.tracker

    @property
    def cel(self) -> CelReconciler:
        return self.calls.cel

    @property
    def resyncs(self) -> int:
        return self.calls.reconnect.resyncs

    async def start(self) -> None:
        # Calls that ended while we were down are in CEL: finish their cases first.
        await self.calls.catch_up()
        await self.ami.start()
        await self.calls.start()

    async def stop(self) -> None:
        await self.calls.stop()
        await self.ami.stop()

    async def _on_event(self, event: ev.DomainEvent) -> None:
        self.events_handled += 1
        for name, handler in self._handlers:
            try:
                await handler(event)
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                self.health.failed(f"{name} event", exc)
            except Exception:
                log.exception("AMI event handler failed",
                              extra={"node": self.node.id, "handler": name})
