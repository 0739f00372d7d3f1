"""SIP parties on pjsua2: agents' softphones and callers, for the demo, the tests and agents.

Each party runs in its own process (as each agent runs their own softphone): pjsua2 allows one
library per process and the PyPI build holds at most four calls in it. ``SipPhones`` starts
and drives them; a ``Phone`` and its ``PhoneCall``s mirror the party's state in asyncio.

    phones = SipPhones()
    agent = await phones.agent("1001", password, server="127.0.0.1:5060", play=wav)
    caller = await phones.caller("13812345678", play=speech)
    call = await caller.call("sip:12345@127.0.0.1:5060")
    await call.answered.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_desk.softphone.credentials import AgentCredentials
from common.livekeys import LiveKeys
from common.privacy import mask_number
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class PhoneError(Exception):
    pass


@dataclass
class CallRecord:
    remote_uri: str = ""
    state: str = "NULL"
    last_status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)


class PhoneCall:
    def __init__(self, phone: Phone, call_id: int, record_file: str | None):
        self.phone = phone
        self.id = call_id
        self.record_file = Path(record_file) if record_file else None
        self.record = CallRecord()
        self.answered = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.media_active = asyncio.Event()
        self.media_updates = 0
        # When media first flowed (wall clock): the party's recording starts then.
        self.media_at: float | None = None
        # Set when the party's process has destroyed this call's recorder (the WAV is then
        # complete: ``recording_complete``) or knows none will start.
        self.recorded = asyncio.Event()
        self.recording_complete: bool | None = None
        # DTMF digits received from the far end (RFC 4733), in order.
        self.dtmf_received = ""
        self.dtmf_changed = asyncio.Event()

    @property
    def finished_recording(self) -> Path:
        """The recording, once finished and complete; raises before that (never read a file
        its writer still holds)."""
        if not self.recorded.is_set():
            raise PhoneError(f"{self!r}: its recording is not finished yet (close the phone, "
                             "hang up, or stop_recording first)")
        if self.record_file is None or not self.recording_complete:
            raise PhoneError(f"{self!r}: no complete recording ({self.record_file})")
        return self.record_file

    async def recording(self, timeout: float = 15.0) -> Path:
        """Wait until the recording is finished, and return it (see ``finished_recording``)."""
        await asyncio.wait_for(self.recorded.wait(), timeout)
        return self.finished_recording

    def __repr__(self) -> str:
        return f"<PhoneCall {self.phone.name}#{self.id} {self.record.state}>"


class Phone:
    """One SIP party in its own process."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process):
        self.name = name
        self.proc = proc
        self.calls: dict[int, PhoneCall] = {}
        self.incoming: asyncio.Queue[PhoneCall] = asyncio.Queue()
        self.registered = asyncio.Event()
        self.closed = asyncio.Event()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._seq = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._killed = False
        self.port = 0

    async def _request(self, op: str, timeout: float = 15.0, **args: Any) -> Any:
        if self.closed.is_set() or self.proc.stdin is None:
            raise PhoneError(f"{self.name}: the softphone process has exited")
        rid = next(self._seq)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.proc.stdin.write((json.dumps({"id": rid, "op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)

    def _call(self, cid: int, record_file: str | None = None) -> PhoneCall:
        call = self.calls.get(cid)
        if call is None:
            call = self.calls[cid] = PhoneCall(self, cid, record_file)
        elif record_file and call.record_file is None:
            call.record_file = Path(record_file)
        return call

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                self._on_message(msg)
        finally:
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(PhoneError(f"{self.name}: softphone process exited"))
            for call in self.calls.values():
                call.disconnected.set()
                # No recorder will be finished any more: readers fail now, not at a timeout
                # (recording_complete stays None unless the process said otherwise).
                call.recorded.set()

    def _on_message(self, msg: dict[str, Any]) -> None:
        if "re" in msg:
            fut = self._pending.get(msg["re"])
            if fut is not None and not fut.done():
                if msg.get("ok"):
                    fut.set_result(msg.get("result"))
                else:
                    fut.set_exception(PhoneError(f"{self.name}: {msg.get('error')}"))
            return
        ev = msg.get("ev")
        if ev == "registered":
            self.registered.set()
        elif ev == "incoming":
            call = self._call(msg["call"], msg.get("record_file"))
            call.record.remote_uri = msg.get("remote_uri", "")
            call.record.headers = msg.get("headers") or {}
            self.incoming.put_nowait(call)
        elif ev == "state":
            call = self._call(msg["call"])
            r = call.record
            r.state = msg.get("state", r.state)
            r.last_status = msg.get("status", r.last_status)
            r.reason = msg.get("reason", r.reason)
            r.remote_uri = msg.get("remote_uri") or r.remote_uri
            r.history.append(r.state)
            if r.state == "CONFIRMED":
                call.answered.set()
            elif r.state == "DISCONNCTD" or r.state.startswith("DISCONN"):
                call.disconnected.set()
        elif ev == "recorded":
            call = self._call(msg["call"])
            if msg.get("record_file"):
                call.record_file = Path(msg["record_file"])
            call.recording_complete = msg.get("complete")
            call.recorded.set()
        elif ev == "dtmf":
            call = self._call(msg["call"])
            call.dtmf_received += str(msg.get("digit", ""))
            call.dtmf_changed.set()
        elif ev == "media":
            call = self._call(msg["call"])
            call.media_updates += 1
            if call.media_at is None:
                call.media_at = time.time()
            call.media_active.set()

    # -- actions ------------------------------------------------------------------------------

    async def call(self, uri: str, *, headers: dict[str, str] | None = None,
                   play: Path | None = None, record: Path | None = None) -> PhoneCall:
        res = await self._request("call", uri=uri, headers=headers or {},
                                  play=str(play) if play else None,
                                  record=str(record) if record else None)
        return self._call(res["call"], res.get("record_file"))

    async def answer(self, call: PhoneCall, code: int = 200) -> None:
        await self._request("answer", call=call.id, code=code)

    async def hangup(self, call: PhoneCall) -> None:
        if not call.disconnected.is_set():
            await self._request("hangup", call=call.id)

    async def dtmf(self, call: PhoneCall, digits: str) -> None:
        await self._request("dtmf", call=call.id, digits=digits)

    async def hold(self, call: PhoneCall) -> None:
        await self._request("hold", call=call.id)

    async def unhold(self, call: PhoneCall) -> None:
        await self._request("unhold", call=call.id)

    async def play(self, call: PhoneCall, path: Path | None) -> None:
        await self._request("play", call=call.id, path=str(path) if path else None)

    async def stop_recording(self, call: PhoneCall) -> Path | None:
        """Close the WAV of what this party heard; returns once its process has destroyed the
        recorder and checked the file (None: nothing was recorded)."""
        res = await self._request("stop_recording", call=call.id)
        await asyncio.wait_for(call.recorded.wait(), 5)  # the event precedes the answer
        return Path(res["record_file"]) if res and res.get("record_file") else None

    async def unregister(self) -> None:
        await self._request("unregister")

    async def close(self, timeout: float = 45.0) -> None:
        """Hang up, unregister and end the process. Returns only when the process has
        acknowledged that every recorder is destroyed and every recording complete, and has
        exited; raises ``PhoneError`` if it could not (its recordings are then not to be read).
        Closing twice, or from several tasks, waits for the same close."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(timeout))
        await asyncio.shield(self._closing)

    async def _close(self, timeout: float) -> None:
        failure: BaseException | str | None = None
        alive = self.proc.returncode is None and not self.closed.is_set()
        if alive and not self._killed:
            try:
                await self._request("quit", timeout=timeout)
            except (PhoneError, TimeoutError, OSError) as exc:
                failure = exc
        elif not self._killed:
            # Ended before being asked to: it crashed, and nothing finished its recordings.
            failure = f"the process had exited by itself (code {await self.proc.wait()})"
        try:
            await asyncio.wait_for(self.proc.wait(), timeout if failure is None else 1.0)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        if failure is not None:
            raise PhoneError(f"{self.name}: did not close cleanly, its recordings may be "
                             f"incomplete: {failure}")

    def kill(self) -> None:
        """The softphone dies as a crash would (no BYE, no unregister)."""
        self._killed = True
        if self.proc.returncode is None:
            self.proc.kill()


class SipPhones:
    """Starts and tracks SIP parties, each in its own process."""

    def __init__(self, *, log_dir: Path | None = None):
        self.phones: list[Phone] = []
        self.log_dir = log_dir

    async def start(self) -> SipPhones:
        return self

    async def _spawn(self, name: str, port: int = 0) -> Phone:
        stderr: Any = asyncio.subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log_dir / f"{name}.log", "ab")  # noqa: ASYNC230
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_desk.softphone.worker",
            *(["--port", str(port)] if port else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, env={**os.environ,
                                                                "PYTHONUNBUFFERED": "1"})
        if stderr is not asyncio.subprocess.DEVNULL:
            stderr.close()
        phone = Phone(name, proc)
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20) or b"{}")
        if ready.get("ev") != "ready":
            raise PhoneError(f"{name}: softphone process failed to start")
        phone.port = int(ready.get("port", 0))
        phone._reader = asyncio.create_task(phone._read(), name=f"phone-{name}")
        self.phones.append(phone)
        return phone

    async def agent(self, extension: str, password: str, *, server: str,
                    play: Path | None = None, record_dir: Path | None = None,
                    auto_answer: bool = True, answer_delay: float = 0.0,
                    register_timeout: float = 10.0) -> Phone:
        """An agent's softphone registered at ``server`` (host:port)."""
        phone = await self._spawn(f"agent{extension}")
        await phone._request("agent", extension=extension, password=password, server=server,
                             play=str(play) if play else None,
                             record_dir=str(record_dir) if record_dir else None,
                             auto_answer=auto_answer, answer_delay=answer_delay,
                             timeout=register_timeout + 5)
        return phone

    async def caller(self, number: str, *, display_name: str = "", host: str = "127.0.0.1",
                     play: Path | None = None, record_dir: Path | None = None) -> Phone:
        """An unregistered party whose calls come from ``number``, as a carrier sends them."""
        phone = await self._spawn(f"caller{mask_number(number).replace('*', 'x')}")
        await phone._request("caller", number=number, display_name=display_name, host=host,
                             play=str(play) if play else None,
                             record_dir=str(record_dir) if record_dir else None)
        return phone

    async def line(self, number: str, *, port: int, host: str = "127.0.0.1",
                   play: Path | None = None, record_dir: Path | None = None,
                   auto_answer: bool = True, answer_delay: float = 0.0) -> Phone:
        """The far end of a trunk that Asterisk reaches at ``host:port`` (a branch center's or
        an emergency line's SBC): takes the calls sent there, and can call out as ``number``."""
        phone = await self._spawn(f"line{number}", port=port)
        await phone._request("caller", number=number, host=host,
                             play=str(play) if play else None,
                             record_dir=str(record_dir) if record_dir else None,
                             auto_answer=auto_answer, answer_delay=answer_delay)
        return phone

    async def remove(self, phone: Phone) -> None:
        await phone.close()
        if phone in self.phones:
            self.phones.remove(phone)

    async def stop(self) -> None:
        results = await asyncio.gather(*(p.close() for p in self.phones),
                                       return_exceptions=True)
        for phone, result in zip(self.phones, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("softphone did not close cleanly",
                            extra={"phone": phone.name, "error": str(result)})
        self.phones.clear()


async def run_softphone(cfg: Any, creds: AgentCredentials, *, answer: str = "auto",
                        play: Path | None = None, record_dir: Path | None = None,
                        audio: str = "auto") -> int:
    """``hotline softphone --agent 1001 --credentials FILE``: register with the agent's own
    credentials (never the master SIP secret) and take calls until interrupted."""
    import signal

    from agent_desk.softphone.engine import SipStack
    from common.redisconn import open_redis

    agent_id = creds.agent
    agent = cfg.agent(agent_id)
    stack = await SipStack(audio=audio).start()
    party = await stack.agent(agent_id, creds.password, server=creds.server, play=play,
                              record_dir=record_dir, auto_answer=answer == "auto")
    how = {"auto": "auto-answering", "manual": "press Enter to answer",
           "console": "answering when the web console says so"}[answer]
    sound = "sound card" if stack.sound_device else "no sound card (sending silence)"
    print(f"softphone {agent_id} ({agent.name}) registered at {creds.server}; "
          f"{how}; {sound}; Ctrl-C to quit", flush=True)
    control: SoftphoneControl | None = None
    if answer == "console":
        redis = await open_redis(cfg)
        control = await SoftphoneControl(party, redis, cfg.redis.prefix, agent_id).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def calls() -> None:
        while True:
            call = await party.incoming.get()
            who = call.record.remote_uri.split("sip:")[-1].split("@")[0]
            print(f"incoming call from {mask_number(who)}", flush=True)
            if answer == "manual":
                await loop.run_in_executor(None, sys.stdin.readline)
                await party.answer(call)

    task = asyncio.create_task(calls()) if control is None else None
    await stop.wait()
    if task is not None:
        task.cancel()
    if control is not None:
        await control.stop()
        await control.redis.aclose()
    await stack.stop()
    return 0


class SoftphoneControl:
    """Puts a softphone under the web console's control.

    The console publishes commands on ``<prefix>:softphone:<agent>`` (JSON ``{"op": "answer"
    | "hold" | "unhold" | "hangup", "id": ...}``); the softphone reports what happens on the
    service's events channel as ``{"type": "softphone", "agent", "event": "ringing" |
    "answered" | "held" | "unheld" | "idle" | "error", "re": <command id>}``, which the
    console's WebSocket forwards to the agent's page. Works with a ``Phone`` (a pjsua2 process,
    as the tests and the demo run them) and with the in-process ``SipParty`` of
    ``hotline softphone --answer console`` alike: both have ``incoming``, ``answer``,
    ``hold``, ``unhold`` and ``hangup``."""

    def __init__(self, party: Any, redis: Any, prefix: str, agent_id: str):
        self.party = party
        self.redis = redis
        self.agent_id = agent_id
        keys = LiveKeys(prefix)
        self.commands = keys.softphone(agent_id)
        self.events = keys.events
        self.current: Any = None
        self.handled = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self) -> SoftphoneControl:
        self._tasks = [asyncio.create_task(self._incoming()),
                       asyncio.create_task(self._listen())]
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, what="softphone control")

    async def report(self, event: str, **extra: Any) -> None:
        await self.redis.publish(self.events, json.dumps({
            "type": "softphone", "at": time.time(), "agent": self.agent_id, "event": event,
            **extra}))

    async def _incoming(self) -> None:
        while True:
            call = await self.party.incoming.get()
            self.current = call
            await self.report("ringing")
            task = asyncio.create_task(self._watch(call))
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)

    async def _watch(self, call: Any) -> None:
        await call.disconnected.wait()
        if self.current is call:
            self.current = None
        await self.report("idle")

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.commands)
            self._subscribed.set()
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                try:
                    cmd = json.loads(msg["data"])
                    op, rid = str(cmd["op"]), cmd.get("id")
                except (ValueError, KeyError, TypeError):
                    continue
                await self._do(op, rid)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 2)

    async def _do(self, op: str, rid: Any) -> None:
        call = self.current
        if call is None or call.disconnected.is_set():
            await self.report("error", re=rid, op=op, error="no call at the softphone")
            return
        try:
            if op == "answer":
                await self.party.answer(call)
                await asyncio.wait_for(call.answered.wait(), 10)
                await self.report("answered", re=rid)
            elif op == "hold":
                await self.party.hold(call)
                await self.report("held", re=rid)
            elif op == "unhold":
                await self.party.unhold(call)
                await self.report("unheld", re=rid)
            elif op == "hangup":
                await self.party.hangup(call)
                await self.report("hung_up", re=rid)
            else:
                await self.report("error", re=rid, op=op, error=f"unknown command {op!r}")
                return
            self.handled += 1
        except Exception as exc:
            log.warning("softphone command failed", extra={"op": op, "error": str(exc)})
            await self.report("error", re=rid, op=op, error=str(exc))
