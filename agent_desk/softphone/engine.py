"""The in-process pjsua2 engine behind every SIP party (see ``softphone`` for the API).

pjsua2 allows one library instance per process and is not thread-safe, so one ``SipStack``
owns it on a dedicated thread (``threadCnt = 0``, ``mainThreadOnly``) and every pjsua2 call runs
there; asyncio code talks to it through ``await stack.run(fn)``. pjsua2's Call objects stay on
that thread and are dropped before the library is destroyed (one freed later aborts the
process), and WAV recorders are destroyed explicitly, their files watched until complete, before
the library (or their header stays empty).

Players are never destroyed where they stop. pjsua2 2.15.1 hands every WAV player's end-of-file
to pjmedia's event thread with a pointer to the ``AudioMediaPlayer``; one destroyed while such an
event is still queued (a looping file wrapped just before the hangup) is called there after it is
freed, and the process dies (SIGSEGV in ``AudioMediaPlayer::eof_cb``; fixed upstream after 2.15.1,
pjproject #5045). So a player let go of is retired: silenced, kept, and destroyed by the stack's
loop only once the bridge no longer reads it and an end-of-file queued after its last one (the
``_EofMarker``'s) has been delivered: every event about it is then over.

The PyPI wheel is built with PJSUA_MAX_CALLS = 4: one engine holds at most four calls. That is
why each party (an agent's softphone, a caller) runs its own engine in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pjsua2 as pj

from agent_desk.softphone.wavfile import wav_complete
from common.privacy import mask_number

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# How long the conference bridge may take to destroy a recorder let go of (normally one clock
# tick, ~10 ms; more on a loaded machine).
RECORDING_FINISH_S = 10.0
# How long retiring players may take at shutdown (normally a few clock ticks).
PLAYERS_RETIRE_S = 10.0


@dataclass
class CallRecord:
    """What happened to one call, as the party saw it."""

    remote_uri: str = ""
    state: str = "NULL"
    last_status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)


class _PjCall(pj.Call):  # type: ignore[misc]  # pjsua2 (SWIG) ships no types
    """pjsua2's call object; only the stack's thread holds it, and drops it before the
    library is destroyed (a pjsua2 Call freed after that aborts the process)."""

    def __init__(self, facade: SipCall, account: pj.Account, call_id: int):
        super().__init__(account, call_id)
        self.facade = facade

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.facade._on_state()

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.facade._on_media()

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.facade.dtmf_received += prm.digit
        self.facade.stack.notify("dtmf", self.facade, digit=prm.digit)


class SipCall:
    """One call leg of a party, as asyncio code sees it. Its pjsua2 work runs on the stack's
    thread."""

    def __init__(self, party: SipParty, call_id: int = pj.PJSUA_INVALID_ID):
        self.pj: _PjCall | None = _PjCall(self, party.account, call_id)
        self.party = party
        self.stack = party.stack
        self.record = CallRecord()
        self.play_file: Path | None = None
        self.record_file: Path | None = None
        self._player: pj.AudioMediaPlayer | None = None
        self._player_sink: pj.AudioMedia | None = None
        self._recorder: pj.AudioMediaRecorder | None = None
        self._media_up = False
        self.answered = self.stack.event()
        self.disconnected = self.stack.event()
        self.media_active = self.stack.event()
        # Set once this call's recorder is destroyed (its WAV header written) or, without a
        # recorder, once none can start any more; only then may anyone read ``record_file``.
        self.recorded = self.stack.event()
        self.recording_complete: bool | None = None
        self._recording_done = False
        # DTMF digits received from the far end (RFC 4733), in order.
        self.dtmf_received = ""

    # -- callbacks (stack thread) -------------------------------------------------------

    def _on_state(self) -> None:
        assert self.pj is not None
        info = self.pj.getInfo()
        self.record.state = info.stateText
        self.record.remote_uri = info.remoteUri
        self.record.last_status = info.lastStatusCode
        self.record.reason = info.lastReason
        self.record.history.append(info.stateText)
        self.stack.notify("state", self, state=info.stateText, status=info.lastStatusCode,
                          reason=info.lastReason, remote_uri=info.remoteUri)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.stack.signal(self.answered)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.stack.signal(self.disconnected)
            # Next turn, outside pjsua2's callback: it is still tearing the call's media down.
            self.stack.later(0, self.detach)

    def _on_media(self) -> None:
        assert self.pj is not None
        info = self.pj.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            aud = self.pj.getAudioMedia(i)
            if not self._media_up:
                self._media_up = True
                self.stack.connect_sound(aud)
                if self.play_file is not None:
                    self._start_player(aud)
                if self.record_file is not None and not self._recording_done:
                    self._recorder = pj.AudioMediaRecorder()
                    self.stack.recording_started.append(self)
                    self._recorder.createRecorder(str(self.record_file))
                    aud.startTransmit(self._recorder)
            self.stack.signal(self.media_active)
            self.stack.notify("media", self)

    def _start_player(self, aud: pj.AudioMedia) -> None:
        self._player = pj.AudioMediaPlayer()
        self._player.createPlayer(str(self.play_file), 0)  # 0 = loop
        self._player.startTransmit(aud)
        self._player_sink = aud

    def _stop_player(self, *, call_alive: bool) -> None:
        """Silence the player and hand it to the stack, which destroys it once no event about
        it can come any more (see the module's docstring)."""
        player, sink = self._player, self._player_sink
        self._player = self._player_sink = None
        if player is None:
            return
        if call_alive and sink is not None:
            # After a disconnect the call's port is already going, and with it the connection.
            with contextlib.suppress(pj.Error):
                player.stopTransmit(sink)
        self.stack.retire_player(player)

    def _release_media(self) -> None:
        self._stop_player(call_alive=False)
        self._finish_recording()

    def _finish_recording(self) -> None:
        """Let go of the recorder and have the stack watch its file until complete.

        pjmedia writes the WAV header's sizes only when the recorder's port is destroyed, and
        since pjsip 2.14 that happens asynchronously: dropping the recorder queues its removal
        from the conference bridge, whose clock destroys it on a later tick. So the file is
        complete some milliseconds after this, and must be before the library is destroyed
        (or it never is). Readers wait for ``recorded``."""
        if self._recording_done:
            return
        self._recording_done = True
        had_recorder = self._recorder is not None
        self._recorder = None  # the only reference: its port goes from the bridge next
        if had_recorder and self.record_file is not None:
            self.stack.watch_recording(self)
        else:
            self._recorded(None)

    def _recorded(self, complete: bool | None) -> None:
        """The recording is over (``complete``: whether its file is; None: none was made)."""
        self.recording_complete = complete
        if complete is not None and self.record_file is not None:
            self.stack.recordings.append((self.record_file, complete))
        self.stack.notify("recorded", self, complete=complete,
                          record_file=str(self.record_file) if complete is not None else None)
        self.stack.signal(self.recorded)

    # -- actions (stack thread) ---------------------------------------------------------

    def change_playback(self, path: Path | None) -> None:
        self.play_file = path
        self._stop_player(call_alive=True)
        if path is not None and self._media_up and self.pj is not None:
            info = self.pj.getInfo()
            for i, media in enumerate(info.media):
                if media.type == pj.PJMEDIA_TYPE_AUDIO:
                    self._start_player(self.pj.getAudioMedia(i))
                    break

    def is_active(self) -> bool:
        return self.pj is not None and self.pj.isActive()

    def detach(self) -> None:
        """Drop pjsua2's object (after disconnect, or before the library goes)."""
        self._release_media()
        self.pj = None

    def stop_recording(self) -> None:
        """Finish this call's recording while the call goes on (``recorded`` tells when)."""
        self._finish_recording()


class SipParty:
    """A registered agent softphone, or an unregistered caller on a trunk."""

    def __init__(self, stack: SipStack, name: str, account: pj.Account):
        self.stack = stack
        self.name = name
        self.account = account
        self.auto_answer = False
        self.answer_delay = 0.0
        self.play_file: Path | None = None
        self.record_dir: Path | None = None
        self.calls: list[SipCall] = []
        self.incoming: asyncio.Queue[SipCall] = asyncio.Queue()
        self.registered = stack.event()
        self._seq = itertools.count(1)

    def next_recording(self) -> Path | None:
        if self.record_dir is None:
            return None
        self.record_dir.mkdir(parents=True, exist_ok=True)
        return self.record_dir / f"{self.name}-{next(self._seq)}.wav"

    async def call(self, uri: str, *, headers: dict[str, str] | None = None,
                   play: Path | None = None, record: Path | None = None) -> SipCall:
        def make() -> SipCall:
            c = SipCall(self)
            c.play_file = play or self.play_file
            c.record_file = record or self.next_recording()
            prm = pj.CallOpParam(True)
            for k, v in (headers or {}).items():
                h = pj.SipHeader()
                h.hName, h.hValue = k, v
                prm.txOption.headers.append(h)
            self.calls.append(c)
            assert c.pj is not None
            c.pj.makeCall(uri, prm)
            return c

        return await self.stack.run(make)

    async def answer(self, call: SipCall, code: int = 200) -> None:
        def do() -> None:
            prm = pj.CallOpParam()
            prm.statusCode = code
            if call.pj is not None:
                call.pj.answer(prm)

        await self.stack.run(do)

    async def hangup(self, call: SipCall) -> None:
        def do() -> None:
            if call.is_active():
                assert call.pj is not None
                call.pj.hangup(pj.CallOpParam(True))

        await self.stack.run(do)

    async def dtmf(self, call: SipCall, digits: str) -> None:
        await self.stack.run(lambda: call.pj and call.pj.dialDtmf(digits))

    async def hold(self, call: SipCall) -> None:
        await self.stack.run(lambda: call.pj and call.pj.setHold(pj.CallOpParam(True)))

    async def unhold(self, call: SipCall) -> None:
        def do() -> None:
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            if call.pj is not None:
                call.pj.reinvite(prm)

        await self.stack.run(do)

    async def play(self, call: SipCall, path: Path | None) -> None:
        await self.stack.run(lambda: call.change_playback(path))

    async def wait_registered(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self.registered.wait(), timeout)

    async def unregister(self) -> None:
        await self.stack.run(lambda: self.account.setRegistration(False))


class _Account(pj.Account):  # type: ignore[misc]  # pjsua2 (SWIG) ships no types
    def __init__(self, stack: SipStack):
        super().__init__()
        self.stack = stack
        self.party: SipParty | None = None

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        if self.party is not None and prm.code == 200 and prm.expiration > 0:
            self.stack.signal(self.party.registered)
            self.stack.notify("registered", self.party)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        party = self.party
        assert party is not None
        call = SipCall(party, prm.callId)
        call.play_file = party.play_file
        call.record_file = party.next_recording()
        # Keep the INVITE's headers (Asterisk passes the case number on to the agent).
        remote = ""
        for line in prm.rdata.wholeMsg.split("\r\n"):
            name = line.partition(":")[0].strip().lower()
            if name.startswith("x-hotline-"):
                k, _, v = line.partition(":")
                call.record.headers[k.strip()] = v.strip()
            elif name in ("from", "f") and not remote:
                remote = line.partition(":")[2].strip().split(";tag=")[0]
        call.record.remote_uri = remote
        party.calls.append(call)
        ring = pj.CallOpParam()
        ring.statusCode = 180
        assert call.pj is not None
        call.pj.answer(ring)
        if party.auto_answer:
            if party.answer_delay > 0:
                self.stack.later(party.answer_delay, lambda: _answer_if_ringing(call))
            else:
                _answer_if_ringing(call)
        self.stack.post_async(party.incoming.put_nowait, call)
        self.stack.notify("incoming", call, remote_uri=remote,
                          headers=dict(call.record.headers))


class _EofMarker(pj.AudioMediaPlayer):  # type: ignore[misc]  # pjsua2 (SWIG) ships no types
    """A short silent WAV played once into the null sound device, to learn when the events
    queued before its end-of-file have been delivered: pjmedia has one event thread, which
    delivers them in order, and this one last. Re-armed for each round of retired players."""

    def __init__(self, path: Path, sink: pj.AudioMedia):
        super().__init__()
        self.delivered = threading.Event()
        self.armed = False
        self.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
        self.sink = sink

    def arm(self) -> None:
        self.delivered.clear()
        self.armed = True
        self.setPos(0)
        self.startTransmit(self.sink)

    def disarm(self) -> None:
        self.armed = False
        with contextlib.suppress(pj.Error):
            self.stopTransmit(self.sink)

    def onEof2(self) -> None:  # pjmedia's event thread; nothing touches the player after this
        self.delivered.set()


def _silence(path: Path, seconds: float = 0.1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return path


def _answer_if_ringing(call: SipCall) -> None:
    with contextlib.suppress(pj.Error):
        c = call.pj
        if c is not None and c.isActive() and c.getInfo().state in (
            pj.PJSIP_INV_STATE_EARLY, pj.PJSIP_INV_STATE_INCOMING
        ):
            prm = pj.CallOpParam()
            prm.statusCode = 200
            c.answer(prm)


class SipStack:
    """The process's one pjsua2 library, on its own thread."""

    def __init__(self, *, bind: str = "127.0.0.1", port: int = 0, log_level: int = 1,
                 audio: str = "null"):
        self.bind = bind
        self.port = port
        self.log_level = log_level
        # "device": the sound card (microphone and speaker; an error if there is none);
        # "null": no sound card, the microphone's silence still sent (tests, desk phones
        # driven by a program); "auto": the sound card when there is one.
        if audio not in ("device", "null", "auto"):
            raise ValueError(f"audio must be device, null or auto, not {audio!r}")
        self.audio = audio
        self.sound_device = False  # set on start: whether a sound card is used
        self.loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self._accounts: list[pj.Account] = []
        self._parties: list[SipParty] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready: Future[int] = Future()
        self.local_port = 0
        # Every recording this stack finished, and whether its file is complete (stack thread
        # appends; read after the thread has ended).
        self.recordings: list[tuple[Path, bool]] = []
        self.recording_started: list[SipCall] = []
        # Recordings let go of but not complete yet, each with its deadline (stack thread).
        self._unfinished: list[tuple[float, SipCall]] = []
        # Players let go of (stack thread): waiting for the bridge to stop reading them, and
        # those that it no longer reads, waiting for the marker's end-of-file to be delivered.
        self._retired: list[pj.AudioMediaPlayer] = []
        self._silenced: list[pj.AudioMediaPlayer] = []
        self._marker: _EofMarker | None = None
        self._marker_file: Path | None = None
        # Called on the asyncio loop with (kind, call or party, details) for every change:
        # "registered", "incoming", "state", "media". The worker process relays these.
        self.observer: Callable[[str, Any, dict[str, Any]], None] | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> SipStack:
        self.loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name="pjsua2", daemon=True)
        self._thread.start()
        self.local_port = await asyncio.wrap_future(self._ready)
        return self

    async def stop(self, timeout: float = 30.0) -> list[tuple[Path, bool]]:
        """Hang up, destroy every recorder and then the library, and wait for the thread to
        end; returns every recording finished, and whether its file is complete. Raises if the
        thread is still running after ``timeout`` (its recordings are then not to be
        trusted)."""
        if self._thread is None:
            return list(self.recordings)
        self._stopping.set()
        thread = self._thread
        await asyncio.get_running_loop().run_in_executor(None, thread.join, timeout)
        if thread.is_alive():
            raise RuntimeError(f"the pjsua2 thread did not stop within {timeout:.0f} s")
        self._thread = None
        # A recording started but never finished (the thread failed on the way) is incomplete.
        unfinished = [(c.record_file, False) for c in self.recording_started
                      if c.recording_complete is None and c.record_file is not None]
        return list(self.recordings) + unfinished

    def _main(self) -> None:
        ep = pj.Endpoint()
        try:
            ep.libCreate()
            cfg = pj.EpConfig()
            cfg.uaConfig.threadCnt = 0
            cfg.uaConfig.mainThreadOnly = True
            cfg.uaConfig.maxCalls = 4  # the wheel's compile-time PJSUA_MAX_CALLS
            cfg.logConfig.level = self.log_level
            cfg.logConfig.consoleLevel = self.log_level
            cfg.medConfig.clockRate = 8000
            cfg.medConfig.sndClockRate = 8000
            cfg.medConfig.ecTailLen = 0
            cfg.medConfig.noVad = True
            ep.libInit(cfg)
            self._choose_sound(ep)
            tcfg = pj.TransportConfig()
            tcfg.port = self.port
            tcfg.boundAddress = self.bind
            tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
            ep.libStart()
            port = ep.transportGetInfo(tid).localName.rsplit(":", 1)[-1]
            self._ready.set_result(int(port))
        except BaseException as exc:  # report start failures to the awaiting coroutine
            self._ready.set_exception(exc)
            return
        try:
            while not self._stopping.is_set():
                ep.libHandleEvents(5)
                self._run_commands()
                self._run_timers()
                self._check_recordings()
                self._check_players(ep)
        finally:
            self._shutdown(ep)

    def _choose_sound(self, ep: pj.Endpoint) -> None:
        """The sound card when asked for (or, with "auto", when there is one), else the
        null device: a clock with a silent microphone."""
        adm = ep.audDevManager()
        has_card = False
        if self.audio != "null":
            with contextlib.suppress(pj.Error):
                devices = adm.enumDev2()
                has_card = (any(d.inputCount > 0 for d in devices)
                            and any(d.outputCount > 0 for d in devices))
        if self.audio == "device" and not has_card:
            raise RuntimeError("no sound card with a microphone and a speaker (use the null "
                               "device: --audio null)")
        if has_card:
            self.sound_device = True
            log.info("softphone uses the sound card")
        else:
            adm.setNullDev()
            if self.audio == "auto":
                log.info("no sound card: the softphone sends silence and plays nothing")

    def connect_sound(self, aud: pj.AudioMedia) -> None:
        """A call's audio to and from the sound device (stack thread). The microphone always
        feeds the call, so RTP flows even with nothing to say: with the null device it is
        silence, and a silent listener is not taken for a dead phone by Asterisk's RTP
        timeout (a call with nothing to send sends no RTP in pjmedia)."""
        adm = pj.Endpoint.instance().audDevManager()
        adm.getCaptureDevMedia().startTransmit(aud)
        if self.sound_device:
            aud.startTransmit(adm.getPlaybackDevMedia())

    def _run_commands(self) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def _run_timers(self) -> None:
        if not self._timers:
            return
        now = _now()
        due = [t for t in self._timers if t[0] <= now]
        self._timers = [t for t in self._timers if t[0] > now]
        for _, fn in due:
            try:
                fn()
            except Exception:
                log.exception("softphone timer failed")

    def _shutdown(self, ep: pj.Endpoint) -> None:
        with contextlib.suppress(Exception):
            ep.hangupAllCalls()
        deadline = _now() + 2
        while _now() < deadline and any(
            _active(c) for p in self._parties for c in p.calls
        ):
            ep.libHandleEvents(10)
        for party in self._parties:
            for c in party.calls:
                try:
                    c.detach()
                except Exception:  # one call's failure must not leave the others' files
                    log.exception("dropping a call failed")
        # Every recorder destroyed (its file complete) before the library: one still queued in
        # the conference bridge when the library goes keeps its empty header for ever.
        while self._unfinished:
            ep.libHandleEvents(5)
            self._check_recordings()
        # Every player destroyed once no event about it can come, and before the library (which
        # would otherwise free the players Python still holds).
        deadline = _now() + PLAYERS_RETIRE_S
        while (self._retired or self._silenced) and _now() < deadline:
            ep.libHandleEvents(5)
            self._check_players(ep)
        if self._retired or self._silenced:
            log.error("players not retired in time: the library destroys them")
            self._leave_to_library()
        self._drop_marker()
        for acc in self._accounts:
            with contextlib.suppress(Exception):
                acc.shutdown()
        self._accounts.clear()
        ep.libDestroy()

    def retire_player(self, player: pj.AudioMediaPlayer) -> None:
        self._retired.append(player)

    def _check_players(self, ep: pj.Endpoint) -> None:
        """Destroy the retired players no event can be about any more (stack thread)."""
        if self._silenced:
            assert self._marker is not None
            if not self._marker.delivered.is_set():
                return
            # Every end-of-file queued before the marker's is delivered: none is left for these.
            self._marker.disarm()
            self._silenced.clear()  # the only references: destroyed here
        if not self._retired:
            return
        # The bridge applies disconnections on its clock: until a player has no listener left
        # it may still read it, and queue another end-of-file.
        if any(_listened_to(p) for p in self._retired):
            return
        self._silenced, self._retired = self._retired, []
        if self._marker is None:
            fd, name = tempfile.mkstemp(prefix="eof-marker-", suffix=".wav")
            os.close(fd)
            self._marker_file = _silence(Path(name))
            self._marker = _EofMarker(self._marker_file, ep.audDevManager().getPlaybackDevMedia())
        self._marker.arm()

    def _leave_to_library(self) -> None:
        """Players that could not be retired safely: left to ``libDestroy``, which destroys
        every player it knows of (Python lets go of its ownership, or it would free them
        twice)."""
        for player in self._retired + self._silenced:
            player.thisown = False
        self._retired.clear()
        self._silenced.clear()

    def _drop_marker(self) -> None:
        marker, self._marker = self._marker, None
        if marker is not None:
            if marker.armed and not marker.delivered.is_set():
                marker.thisown = False  # its end-of-file may still come: as for the players
            marker.disarm()
        if self._marker_file is not None:
            self._marker_file.unlink(missing_ok=True)
            self._marker_file = None

    def watch_recording(self, call: SipCall) -> None:
        self._unfinished.append((_now() + RECORDING_FINISH_S, call))

    def _check_recordings(self) -> None:
        if not self._unfinished:
            return
        waiting: list[tuple[float, SipCall]] = []
        for deadline, call in self._unfinished:
            assert call.record_file is not None
            if wav_complete(call.record_file):
                call._recorded(True)
            elif _now() >= deadline:
                log.error("recording not finished in time", extra={"file": str(
                    call.record_file)})
                call._recorded(False)
            else:
                waiting.append((deadline, call))
        self._unfinished = waiting

    # -- thread plumbing ------------------------------------------------------------------

    async def run(self, fn: Callable[[], _T]) -> _T:
        fut: Future[_T] = Future()
        self._commands.put((fn, fut))
        return await asyncio.wrap_future(fut)

    def event(self) -> asyncio.Event:
        return asyncio.Event()

    def signal(self, ev: asyncio.Event) -> None:
        self.post_async(ev.set)

    def post_async(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self.loop is not None
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def notify(self, kind: str, obj: Any, **details: Any) -> None:
        if self.observer is not None:
            self.post_async(self.observer, kind, obj, details)

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self._timers.append((_now() + delay, fn))

    # -- parties ------------------------------------------------------------------------

    async def agent(self, extension: str, password: str, *, server: str,
                    play: Path | None = None, record_dir: Path | None = None,
                    auto_answer: bool = True, answer_delay: float = 0.0) -> SipParty:
        """A softphone registered as an agent's extension (``server`` = host:port)."""

        def make() -> SipParty:
            acc = _Account(self)
            cfg = pj.AccountConfig()
            cfg.idUri = f"sip:{extension}@{server}"
            cfg.mediaConfig.transportConfig.port = 0
            cfg.regConfig.registrarUri = f"sip:{server}"
            cfg.regConfig.timeoutSec = 300
            cfg.regConfig.retryIntervalSec = 2
            cred = pj.AuthCredInfo("digest", "*", extension, 0, password)
            cfg.sipConfig.authCreds.append(cred)
            return self._add_party(acc, cfg, f"agent{extension}", auto_answer=auto_answer,
                                   answer_delay=answer_delay, play=play,
                                   record_dir=record_dir)

        party = await self.run(make)
        await party.wait_registered()
        return party

    async def caller(self, number: str, *, display_name: str = "", host: str = "127.0.0.1",
                     play: Path | None = None, record_dir: Path | None = None,
                     auto_answer: bool = False, answer_delay: float = 0.0) -> SipParty:
        """An unregistered party whose calls come from ``number`` (as a carrier trunk sends);
        it also takes calls sent to its address (``auto_answer``: as a trunk's far end)."""

        def make() -> SipParty:
            acc = _Account(self)
            cfg = pj.AccountConfig()
            name = f'"{display_name}" ' if display_name else ""
            cfg.idUri = f"{name}<sip:{number}@{host}>"
            cfg.mediaConfig.transportConfig.port = 0
            return self._add_party(acc, cfg, "caller" + mask_number(number).replace("*", "x"),
                                   auto_answer=auto_answer, answer_delay=answer_delay,
                                   play=play, record_dir=record_dir)

        return await self.run(make)

    def _add_party(self, acc: _Account, cfg: pj.AccountConfig, name: str, *,
                   auto_answer: bool, answer_delay: float, play: Path | None,
                   record_dir: Path | None) -> SipParty:
        """The party behind an account, created and kept (stack thread)."""
        party = SipParty(self, name, acc)
        party.auto_answer = auto_answer
        party.answer_delay = answer_delay
        party.play_file = play
        party.record_dir = record_dir
        acc.party = party
        acc.create(cfg)
        self._accounts.append(acc)
        self._parties.append(party)
        return party

    async def remove(self, party: SipParty) -> None:
        """Unregister and drop a party (its softphone "closes")."""

        def do() -> None:
            for c in party.calls:
                if c.is_active() and c.pj is not None:
                    with contextlib.suppress(pj.Error):
                        c.pj.hangup(pj.CallOpParam(True))
            with contextlib.suppress(pj.Error):
                party.account.shutdown()
            if party.account in self._accounts:
                self._accounts.remove(party.account)

        await self.run(do)


def _listened_to(player: pj.AudioMediaPlayer) -> bool:
    try:
        return bool(player.getPortInfo().listeners)
    except pj.Error:  # no longer in the bridge
        return False


def _active(call: SipCall) -> bool:
    try:
        return call.is_active()
    except pj.Error:
        return False


def _now() -> float:
    return time.monotonic()

