"""The AMI client: one connection per Asterisk node, on panoramisk's protocol and messages.

panoramisk 1.4 has defects this wrapper covers:

* it decodes each TCP chunk on its own, so a multi-byte character (a Chinese CallerIDName)
  split across two reads loses characters -> ``BufferedAMIProtocol`` buffers bytes and
  decodes whole messages;
* its keep-alive Ping never checks the reply, so a half-open connection goes unnoticed ->
  a watchdog pings and drops the connection when no reply comes in time;
* actions have no timeout and may never resolve after a reconnect (or are silently re-sent:
  a second Originate is a second phone call) -> every await is bounded, and actions in flight
  when the connection drops fail with ``AmiDisconnected``;
* event callbacks run inside the reader -> events go to a queue and one task hands them to
  the subscriber in arrival order.

After every (re)connection the client takes a snapshot of Asterisk's own state (channels,
callers in queues, queue members) and delivers it as a ``Connected`` event *in the same ordered
stream*, so subscribers can reconcile: nothing that happened while disconnected is lost, and
nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from panoramisk import actions as pactions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from common import events as ev
from common.metrics import UNSERVED, Metrics
from common.privacy import scrub
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

EOM = b"\r\n\r\n"
MAX_MESSAGE = 1 << 20  # no sane AMI message is bigger; a stream without separators is garbage
BATCH_S = 0.005  # the reader gets a turn at least this often while a burst is handled
_STARTS = (b"Event: ", b"Response: ")
_EVENT_START = re.compile(r"\r\n(?=Event: )")
_RESPONSE_START = re.compile(r"\r\n(?=(?:Event|Response): )")


def parse_fields(text: str) -> dict[str, Any]:
    """One AMI message's headers as a dict, names as Asterisk writes them; a repeated header
    becomes a list. Lines without a colon are skipped."""
    lines = text.split("\r\n")
    try:  # the common case, at C speed: every line "Name: value", no name twice
        fields: dict[str, Any] = dict([line.split(": ", 1) for line in lines])
        if len(fields) == len(lines):
            return fields
    except ValueError:
        pass
    fields = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or not key:
                continue
        if key in fields:
            old = fields[key]
            if isinstance(old, list):
                old.append(value)
            else:
                fields[key] = [old, value]
        else:
            fields[key] = value
    return fields


class AmiError(Exception):
    pass


class AmiDisconnected(AmiError):
    """The connection is down, or dropped while the action was in flight."""


class AmiTimeout(AmiError):
    pass


class AmiActionFailed(AmiError):
    def __init__(self, action: str, message: str, response: Message | None = None):
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message
        self.response = response


class BufferedAMIProtocol(AMIProtocol):  # type: ignore[misc]  # panoramisk ships no types
    """Frames the stream on bytes and decodes whole messages; hands events to the client.

    Events (nearly all the traffic) are parsed into plain dicts by :func:`parse_fields`;
    only replies to this connection's actions become panoramisk ``Message``s. Whatever comes
    in, the buffer never holds more than one message of at most ``MAX_MESSAGE`` bytes, and
    bad input is counted and reported (``client.note_malformed``), never raised.
    """

    version: str | None  # the banner's protocol version (AMIProtocol sets it to None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._buffer = bytearray()
        # After an oversized message: drop bytes up to the end of that message.
        self._skipping = False
        self.client: AmiClient | None = None

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        if self._skipping:
            # Dropped up to the end of the oversized message, or up to the next message's
            # first line (Asterisk writes each message whole: a read may start with one).
            if data.startswith(_STARTS):
                del buf[: len(buf) - len(data)]
            else:
                ends = [i + n for i, n in ((buf.find(EOM), len(EOM)),
                                           (buf.find(b"\r\nEvent: "), 2),
                                           (buf.find(b"\r\nResponse: "), 2)) if i >= 0]
                if not ends:
                    del buf[:-12]  # keep what may be the start of a separator or marker
                    return
                del buf[: min(ends)]
            self._skipping = False
        if buf.find(EOM, max(0, len(buf) - len(data) - 3)) >= 0:  # a message end came in
            *frames, rest = buf.split(EOM)
            self._buffer = buf = bytearray(rest)
            for raw in frames:
                if len(raw) > MAX_MESSAGE:
                    if self.client:
                        self.client.note_malformed(f"message of {len(raw)} bytes: dropped")
                    continue
                self._frame(bytes(raw))
        if len(buf) > MAX_MESSAGE:
            if self.client:
                self.client.note_malformed(f"no message end in {len(buf)} bytes: dropped")
            buf.clear()
            self._skipping = True

    def _frame(self, raw: bytes) -> None:
        text = raw.decode(getattr(self, "encoding", "utf-8"), "replace")
        if self.version is None and text.startswith("Asterisk Call Manager/"):
            banner, _, text = text.partition("\r\n")
            self.version = banner.partition("/")[2].strip()
        text = text.strip("\r\n")
        if not text:
            return
        if "\r\nEvent: " in text or (text.startswith("Response: ")
                                      and "\r\nResponse: " in text):
            # A message whose end was lost runs into the next one: keep the next, drop the
            # cut one (its last field may be cut short too). (An event may have a Response
            # header, OriginateResponse does: only a second Event or Response line tells.)
            *cut, text = (_EVENT_START if text.startswith("Event: ")
                          else _RESPONSE_START).split(text)
            for part in cut:
                if self.client:
                    self.client.note_malformed(f"message cut short: {part[:80]}")
        self._message(text)

    def _message(self, text: str) -> None:
        fields = parse_fields(text)
        action_id = fields.get("ActionID") or fields.get("CommandID")
        response = None
        if isinstance(action_id, list):  # garbled: fail the action it names, if any
            response = self.responses.get(action_id[0])
            if response is not None:
                if self.client:
                    self.client.note_malformed(text[:120])
                self._fail(response, "garbled AMI reply (ActionID repeated)")
                return
        elif action_id is not None:
            response = self.responses.get(action_id)
        if response is None:
            if "Event" in fields:
                if self.client is not None:
                    self.client.enqueue(fields)
            elif "Response" not in fields and self.client:
                self.client.note_malformed(text[:120])
            return  # a response nobody waits for (it timed out): nothing to do
        if "Event" not in fields and "Response" not in fields:
            if self.client:
                self.client.note_malformed(text[:120])
            self._fail(response, "garbled AMI reply")
            return
        try:
            message = Message.from_line(text) if "Response" in fields and \
                str(fields["Response"]).startswith(("Follows", "Fail")) else Message(fields)
        except Exception as exc:  # panoramisk's parser on hostile input
            self._fail(response, f"unparseable AMI reply ({exc})")
            return
        self.handle_message(message)

    def _fail(self, response: Any, why: str) -> None:
        if not response.future.done():
            response.future.set_exception(AmiError(f"{response.get('Action')}: {why}"))
        self.responses.pop(response.id, None)
        if response.action_id:
            self.responses.pop(response.action_id, None)

    def handle_message(self, message: Message) -> None:
        response = self.responses.get(message.id)
        if response is None and message.action_id:
            response = self.responses.get(message.action_id)
        if response is not None:
            try:
                done = response.add_message(message)
                if (not done and len(response.responses) == 1 and not response.future.done()
                        and message.get("Response") == "Error"):
                    # A list action refused outright ("No active conferences."): panoramisk
                    # would wait for a list that never starts.
                    response.future.set_result(response.responses)
                    done = True
            except Exception:
                log.exception("AMI response handling failed")
                done = True
                if not response.future.done():
                    response.future.set_exception(AmiError("unparseable AMI response"))
            if done:
                self.responses.pop(response.id, None)
                if response.action_id:
                    self.responses.pop(response.action_id, None)
        elif "event" in message and self.client is not None:
            self.client.enqueue(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.client is not None:
            self.client.connection_lost(self, exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()


Subscriber = Callable[[ev.DomainEvent], Awaitable[None]]


class AmiClient:
    """A self-healing AMI connection to one node.

    ``subscriber`` receives every domain event, in order, one at a time. Actions are
    available through :meth:`send` and the helpers below.
    """

    def __init__(
        self, *, node: str, host: str, port: int, username: str, secret: str,
        subscriber: Subscriber | None = None, action_timeout: float = 5.0,
        ping_interval: float = 5.0, ping_timeout: float = 3.0,
        backoff: Iterable[float] = (0.2, 0.5, 1, 2, 4, 8), max_backoff: float = 10.0,
        ssl: Any = None, server_hostname: str | None = None, metrics: Metrics = UNSERVED,
    ):
        self.node = node
        # AMI over TLS (an ssl.SSLContext) when Asterisk is not on the loopback.
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.subscriber = subscriber
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._backoff = list(backoff)
        self.max_backoff = max_backoff
        self.protocol: BufferedAMIProtocol | None = None
        # Each item with when it came in (perf_counter): the lag.
        self._events: asyncio.Queue[tuple[float, Message | ev.DomainEvent | dict[str, Any]]] = (
            asyncio.Queue())
        self._handling_time = metrics.ami_event.labels(node)
        self._lag = metrics.ami_lag.labels(node)
        self._ready = asyncio.Event()
        # Set once the subscriber has handled the Connected event (resync done).
        self._synced = asyncio.Event()
        self._lost: asyncio.Event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.connections = 0
        self.malformed = 0
        self.malformed_samples: deque[str] = deque(maxlen=20)
        self.events_received = 0
        self.events_handled = 0
        # Subscribers that buffer their writes (telephony.live.state.LiveState.flush): drain()
        # sends what they hold, so a drained client means "handled and written".
        self.flushers: list[Callable[[], Awaitable[None]]] = []

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"ami-{self.node}-supervisor"),
            asyncio.create_task(self._dispatch(), name=f"ami-{self.node}-dispatch"),
        ]

    async def wait_connected(self, timeout: float = 30.0) -> None:
        """Wait until connected, logged in and resynchronised with Asterisk's state."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            raise AmiTimeout(
                f"AMI of node {self.node} at {self.host}:{self.port} not reachable "
                f"in {timeout:.0f} s"
            ) from None

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._tasks, what=f"ami-{self.node}")
        self._tasks = []
        self._drop("client stopped")

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every event received so far has been handled (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._events.qsize() or getattr(self, "_handling", False):
            if time.monotonic() > deadline:
                raise AmiTimeout("events not drained in time")
            await asyncio.sleep(0.01)
        await self._flush()

    async def request_resync(self) -> bool:
        """Deliver a fresh snapshot as a ``Connected`` event in the ordered stream, as after
        a reconnect, without dropping the connection (the live state's Redis lost its data).
        False if not connected: the next connection brings its own snapshot anyway."""
        protocol = self.protocol
        if protocol is None or not self._ready.is_set():
            return False
        snapshot = await self.snapshot(protocol)
        self._put(ev.Connected(self.node, snapshot=snapshot, reconnect=True))
        return True

    def cut(self) -> None:
        """Drop the TCP connection as a network fault would (the client reconnects)."""
        if self.protocol is not None:
            self.protocol.transport.abort()

    # -- connection -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._connect_once()
                attempt = 0
                await self._watch()
            except asyncio.CancelledError:
                raise
            except (OSError, AmiError, TimeoutError) as exc:
                level = logging.WARNING if attempt < 3 else logging.DEBUG
                log.log(level, "AMI connection failed", extra={
                    "node": self.node, "error": str(exc) or type(exc).__name__,
                    "attempt": attempt + 1})
            self._drop("connection lost")
            if self._stopping:
                return
            delay = self._backoff[min(attempt, len(self._backoff) - 1)] if self._backoff else 1
            delay = min(self.max_backoff, delay) * random.uniform(0.8, 1.2)
            attempt += 1
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(BufferedAMIProtocol, self.host, self.port, ssl=self.ssl,
                                   server_hostname=self.server_hostname if self.ssl else None),
            5)
        assert isinstance(protocol, BufferedAMIProtocol)
        protocol.client = self
        protocol.encoding = "utf-8"
        protocol.log = log
        self.protocol = protocol
        login = await self._send_on(protocol, {
            "Action": "Login", "Username": self.username, "Secret": self._secret,
            "Events": "on"}, timeout=5)
        if login.get("Response") != "Success":
            raise AmiActionFailed("Login", login.get("Message", "refused") +
                                  " (check the AMI secret and manager.conf)")
        # Snapshot before we call ourselves ready: subscribers get Connected(snapshot) next in
        # the event stream, after every event that arrived before it.
        snapshot = await self.snapshot(protocol)
        reconnect = self.connections > 0
        self.connections += 1
        self._put(ev.Connected(self.node, snapshot=snapshot, reconnect=reconnect))
        self._ready.set()
        log.info("AMI connected", extra={
            "node": self.node, "asterisk_ami": protocol.version, "reconnect": reconnect,
            "channels": len(snapshot.channels), "queued_callers": len(snapshot.entries)})

    async def _watch(self) -> None:
        """Ping periodically; a ping without a reply means a half-open connection."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.ping_interval)
                return  # the connection closed
            except TimeoutError:
                pass
            protocol = self.protocol
            if protocol is None:
                return
            try:
                await self._send_on(protocol, {"Action": "Ping"}, timeout=self.ping_timeout)
            except AmiTimeout:
                log.warning("AMI ping unanswered: dropping the connection",
                            extra={"node": self.node, "timeout_s": self.ping_timeout})
                protocol.transport.abort()
                return
            except AmiDisconnected:
                return

    def connection_lost(self, protocol: BufferedAMIProtocol, exc: Exception | None) -> None:
        if protocol is not self.protocol:
            return
        self._drop(str(exc) if exc else "closed by Asterisk")

    def _drop(self, reason: str) -> None:
        protocol, self.protocol = self.protocol, None
        if protocol is None:
            return
        was_ready = self._ready.is_set()
        self._ready.clear()
        self._synced.clear()
        self._lost.set()
        with contextlib.suppress(Exception):
            protocol.transport.abort()
        protocol.closed = True
        # Fail what was in flight: the caller decides whether an action may be repeated.
        for action in list(protocol.responses.values()):
            if not action.future.done():
                action.future.set_exception(AmiDisconnected(f"{action.get('Action')}: {reason}"))
        protocol.responses.clear()
        if was_ready:
            log.warning("AMI disconnected", extra={"node": self.node, "reason": reason})
            self._put(ev.Disconnected(self.node, reason=reason))

    # -- events ---------------------------------------------------------------------------

    def enqueue(self, message: Message | dict[str, Any]) -> None:
        self.events_received += 1
        self._put(message)

    def _put(self, item: Message | ev.DomainEvent | dict[str, Any]) -> None:
        self._events.put_nowait((time.perf_counter(), item))

    def note_malformed(self, sample: str) -> None:
        self.malformed += 1
        self.malformed_samples.append(scrub(sample))
        if self.malformed <= 10 or self.malformed % 1000 == 0:
            log.warning("malformed AMI data ignored", extra={
                "node": self.node, "sample": scrub(sample), "count": self.malformed})

    @property
    def backlog(self) -> int:
        """Events received and not handled yet."""
        return self._events.qsize() + (1 if getattr(self, "_handling", False) else 0)

    async def _dispatch(self) -> None:
        """Hand events to the subscriber in order, a burst at a time, giving the loop a
        turn between bursts so the reader keeps reading (a handler that never waits would
        otherwise starve it, and Asterisk drops a reader that stalls for 100 ms)."""
        self._handling = False
        loop = asyncio.get_running_loop()
        while True:
            arrived, item = await self._events.get()
            self._handling = True
            try:
                deadline = loop.time() + BATCH_S
                while True:
                    started = time.perf_counter()
                    await self._handle(item)
                    done = time.perf_counter()
                    self._handling_time.observe(done - started)
                    self._lag.observe(done - arrived)
                    if self._events.empty() or loop.time() > deadline:
                        break
                    arrived, item = self._events.get_nowait()
            finally:
                self._handling = False
            # A handler whose client library swallowed our cancellation (seen with redis-py
            # mid-command while the client stops) must not keep us running.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(0)

    async def _handle(self, item: Message | ev.DomainEvent | dict[str, Any]) -> None:
        try:
            event = (item if isinstance(item, ev.DomainEvent)
                     else ev.parse_event(self.node, item))
            if isinstance(event, ev.MalformedEvent):
                # The header names (never their values) tell what Asterisk left out.
                names = ",".join(list(item)[:24]) if isinstance(item, dict) else ""
                self.note_malformed(f"{event.name}: {event.problem} [{names}]")
            if self.subscriber is not None:
                await self.subscriber(event)
            self.events_handled += 1
            if isinstance(event, ev.Connected) and self._ready.is_set():
                self._synced.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("AMI event handler failed", extra={"node": self.node})

    async def _flush(self) -> None:
        for flush in self.flushers:
            try:
                await flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("AMI subscriber flush failed", extra={"node": self.node})

    # -- actions --------------------------------------------------------------------------

    async def _send_on(self, protocol: BufferedAMIProtocol, action: dict[str, Any], *,
                       timeout: float | None = None, as_list: bool = False) -> Any:
        # as_list=False: complete on the first reply. panoramisk would otherwise guess from the
        # reply text and, for an async Originate, hold the action until the call ends.
        if protocol.closed:
            raise AmiDisconnected(f"{action.get('Action')}: not connected")
        act = pactions.Action(dict(action), as_list=as_list)
        future = protocol.send(act, as_list=as_list)
        try:
            return await asyncio.wait_for(asyncio.shield(future),
                                          timeout or self.action_timeout)
        except TimeoutError:
            protocol.responses.pop(act.id, None)
            raise AmiTimeout(f"{action.get('Action')}: no answer in "
                             f"{timeout or self.action_timeout:.1f} s") from None

    async def send(self, action: dict[str, Any], *, timeout: float | None = None,
                   check: bool = True) -> Message:
        """Send one action and return its response; raises AmiActionFailed on an error reply."""
        protocol = self.protocol
        if protocol is None or not self._ready.is_set():
            raise AmiDisconnected(f"{action.get('Action')}: node {self.node} not connected")
        resp = await self._send_on(protocol, action, timeout=timeout)
        if isinstance(resp, list):
            resp = resp[0]
        if check:
            status = resp.get("Response")
            if status in ("Error", "Fail", "Failure"):
                raise AmiActionFailed(str(action.get("Action")), resp.get("Message", "error"),
                                      resp)
            if status not in ("Success", "Follows", "Goodbye"):
                raise AmiError(f"{action.get('Action')}: unexpected AMI reply "
                               f"{scrub(str(status))[:40]!r}")
        return resp

    async def send_list(self, action: dict[str, Any], *, timeout: float | None = None,
                        protocol: BufferedAMIProtocol | None = None) -> list[Message]:
        """An action answered by an event list; returns the list's events (not the envelope)."""
        protocol = protocol or self.protocol
        if protocol is None:
            raise AmiDisconnected(f"{action.get('Action')}: node {self.node} not connected")
        resp = await self._send_on(protocol, action, timeout=timeout or 10, as_list=True)
        messages = resp if isinstance(resp, list) else [resp]
        if messages and messages[0].get("Response") == "Error":
            raise AmiActionFailed(str(action.get("Action")), messages[0].get("Message", ""))
        return [m for m in messages
                if "event" in m and not str(m.get("Event", "")).endswith("Complete")]

    async def snapshot(self, protocol: BufferedAMIProtocol | None = None) -> ev.Snapshot:
        started = time.time()
        channels = await self.send_list({"Action": "CoreShowChannels"}, protocol=protocol)
        status = await self.send_list({"Action": "QueueStatus"}, protocol=protocol)
        snap_channels = []
        for m in channels:
            try:
                snap_channels.append(ev.ChannelStatus(
                    channel=ev.Channel.parse(m), application=m.get("Application", ""),
                    application_data=m.get("ApplicationData", ""),
                    duration_s=_duration(m.get("Duration", "")),
                    bridge_id=m.get("BridgeId", "")))
            except ev.MissingField as exc:
                self.note_malformed(f"CoreShowChannel missing {exc}")
        entries, members = [], []
        for m in status:
            try:
                if m.get("Event") == "QueueEntry":
                    entries.append(ev.QueueEntry(
                        queue=m["Queue"], position=int(m.get("Position") or 0),
                        wait_s=float(m.get("Wait") or 0), channel=ev.Channel.parse(m)))
                elif m.get("Event") == "QueueMember":
                    members.append(ev.parse_member(m))
            except (KeyError, ValueError) as exc:
                self.note_malformed(f"QueueStatus item: {exc}")
        return ev.Snapshot(channels=snap_channels, entries=entries, members=members,
                           started_at=started)

    # -- call control and queue actions used across the service -----------------------------

    async def originate(self, *, channel: str, context: str | None = None,
                        exten: str | None = None, priority: int = 1,
                        application: str | None = None, data: str | None = None,
                        caller_id: str | None = None, timeout_s: float = 30,
                        variables: dict[str, str] | None = None,
                        channel_id: str | None = None, other_channel_id: str | None = None,
                        early_media: bool = False) -> Message:
        action: dict[str, Any] = {
            "Action": "Originate", "Channel": channel, "Async": "true",
            "Timeout": str(int(timeout_s * 1000)),
        }
        if application:
            action.update(Application=application, Data=data or "")
        else:
            action.update(Context=context, Exten=exten, Priority=str(priority))
        if caller_id:
            action["CallerID"] = caller_id
        if variables:
            action["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        if channel_id:
            action["ChannelId"] = channel_id
        if other_channel_id:
            action["OtherChannelId"] = other_channel_id
        if early_media:
            action["EarlyMedia"] = "true"
        return await self.send(action)

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1, *,
                       extra_channel: str | None = None, extra_context: str | None = None,
                       extra_exten: str | None = None, extra_priority: int = 1) -> Message:
        action: dict[str, Any] = {"Action": "Redirect", "Channel": channel, "Context": context,
                                  "Exten": exten, "Priority": str(priority)}
        if extra_channel:
            action.update(ExtraChannel=extra_channel, ExtraContext=extra_context or context,
                          ExtraExten=extra_exten or exten, ExtraPriority=str(extra_priority))
        return await self.send(action)

    async def hangup(self, channel: str, cause: int = 16) -> Message:
        return await self.send({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})

    async def setvar(self, channel: str, variable: str, value: str) -> Message:
        return await self.send({"Action": "Setvar", "Channel": channel, "Variable": variable,
                                "Value": value})

    async def getvar(self, channel: str, variable: str) -> str:
        resp = await self.send({"Action": "Getvar", "Channel": channel, "Variable": variable})
        return str(resp.get("Value", ""))

    async def queue_add(self, queue: str, interface: str, *, penalty: int = 0,
                        member_name: str = "", paused: bool = False,
                        state_interface: str | None = None, reason: str = "") -> Message:
        action = {"Action": "QueueAdd", "Queue": queue, "Interface": interface,
                  "Penalty": str(penalty), "Paused": "true" if paused else "false",
                  "MemberName": member_name or interface,
                  "StateInterface": state_interface or interface}
        if reason and paused:
            action["Reason"] = reason
        return await self.send(action)

    async def queue_remove(self, queue: str, interface: str) -> Message:
        return await self.send({"Action": "QueueRemove", "Queue": queue,
                                "Interface": interface})

    async def queue_pause(self, interface: str, paused: bool, *, queue: str | None = None,
                          reason: str = "") -> Message:
        action = {"Action": "QueuePause", "Interface": interface,
                  "Paused": "true" if paused else "false"}
        if queue:
            action["Queue"] = queue
        if reason:
            action["Reason"] = reason
        return await self.send(action)

    async def queue_penalty(self, interface: str, penalty: int, *,
                            queue: str | None = None) -> Message:
        action = {"Action": "QueuePenalty", "Interface": interface, "Penalty": str(penalty)}
        if queue:
            action["Queue"] = queue
        return await self.send(action)

    async def mix_monitor(self, channel: str, file: str, options: str = "") -> Message:
        return await self.send({"Action": "MixMonitor", "Channel": channel, "File": file,
                                "Options": options})

    async def stop_mix_monitor(self, channel: str, mixmonitor_id: str | None = None) -> Message:
        action = {"Action": "StopMixMonitor", "Channel": channel}
        if mixmonitor_id:
            action["MixMonitorID"] = mixmonitor_id
        return await self.send(action)

    async def command(self, cli: str) -> str:
        resp = await self.send({"Action": "Command", "Command": cli})
        out = resp.get("Output", "")
        if isinstance(out, list):
            return "\n".join(out)
        return str(out or resp.content)


def _duration(text: str) -> float:
    """CoreShowChannel's Duration is HH:MM:SS."""
    try:
        h, m, s = (int(x) for x in text.split(":"))
        return h * 3600 + m * 60 + s
    except ValueError:
        return 0.0

