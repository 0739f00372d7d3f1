"""Live captions: both sides of a call streamed from Asterisk to Vosk while it runs.

When an agent answers, the service originates two ``Local/tap@hotline-asr-tap/n`` channels:
one half listens with ChanSpy (option ``o``: only what that channel says) to the caller's
channel, the other to the agent's; the other half of each runs AudioSocket to this server,
which receives 8 kHz signed-linear audio tagged with a UUID. Each stream has its own
recognizer on the service's one shared model; Vosk's C calls release the GIL, so streams decode
in parallel on a thread pool. Partial and final results are published on ``<prefix>:captions``,
numbers masked (common.privacy.scrub). The post-call transcript stays the authoritative one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from asr.engine import Stream
from common.privacy import scrub

log = logging.getLogger(__name__)

KIND_HANGUP, KIND_UUID, KIND_AUDIO, KIND_ERROR = 0x00, 0x01, 0x10, 0xFF
BATCH_BYTES = 3200  # 0.2 s of 8 kHz 16-bit audio per decode step


@dataclass
class StreamInfo:
    call_id: str
    case: str | None
    speaker: str
    offset: float = 0.0  # seconds from the agent's answer to the start of this stream
    frames: int = 0
    published: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


Publish = Callable[[dict[str, Any]], Awaitable[None]]


class LiveCaptions:
    def __init__(self, model: Any, model_rate_hz: int, publish: Publish, *,
                 threads: int = 2, max_streams: int = 24):
        self.model = model
        self.rate = model_rate_hz
        self.publish = publish
        self.max_streams = max_streams
        self.expected: dict[str, StreamInfo] = {}
        self.active = 0
        self.streams_done = 0
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads),
                                        thread_name_prefix="asr-live")
        self._server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        for t in list(self._tasks):
            t.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def expect(self, call_id: str, case: str | None, speaker: str, offset: float = 0.0) -> str:
        """A stream id for one side; Asterisk's AudioSocket introduces itself with it."""
        sid = str(uuid.uuid4())
        self.expected[sid] = StreamInfo(call_id, case, speaker, offset)
        return sid

    def can_take(self, n: int = 2) -> bool:
        return self.active + n <= self.max_streams

    # -- AudioSocket server -----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        info: StreamInfo | None = None
        try:
            kind, payload = await _read_msg(reader, timeout=10)
            if kind != KIND_UUID or len(payload) != 16:
                log.warning("audiosocket: first message is not a UUID")
                return
            sid = str(uuid.UUID(bytes=payload))
            info = self.expected.pop(sid, None)
            if info is None:
                log.warning("audiosocket: unknown stream", extra={"stream": sid})
                return
            self.active += 1
            await self.run_stream(info, _audio_chunks(reader))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except Exception:
            log.exception("live captions stream failed")
        finally:
            if info is not None:
                self.active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def run_stream(self, info: StreamInfo, chunks: Any) -> None:
        """Decode one stream (an async iterator of 8 kHz PCM) and publish its captions."""
        loop = asyncio.get_running_loop()
        stream = await loop.run_in_executor(self._pool, Stream, self.model, self.rate)
        buf = bytearray()
        try:
            async for pcm in chunks:
                buf += pcm
                info.frames += 1
                if len(buf) >= BATCH_BYTES:
                    data, buf = bytes(buf), bytearray()
                    for ev in await loop.run_in_executor(self._pool, stream.feed, data):
                        await self._emit(info, ev)
            if buf:
                for ev in await loop.run_in_executor(self._pool, stream.feed, bytes(buf)):
                    await self._emit(info, ev)
            for ev in await loop.run_in_executor(self._pool, stream.finish):
                await self._emit(info, ev)
        finally:
            self.streams_done += 1
            info.done.set()

    async def _emit(self, info: StreamInfo, ev: dict[str, Any]) -> None:
        info.published += 1
        # Captions go to the agent's console, where numbers are masked: scrubbed here, before
        # they leave the service (a partial one hides a number still being said whole).
        msg = {"call_id": info.call_id, "case": info.case, "speaker": info.speaker,
               "text": scrub(ev["text"], partial=not ev["final"]), "final": ev["final"],
               "start": round(info.offset + ev["start"], 2),
               "end": round(info.offset + ev["end"], 2)}
        await self.publish(msg)


async def _read_msg(reader: asyncio.StreamReader, timeout: float | None = None
                    ) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(3), timeout)
    kind, length = head[0], struct.unpack(">H", head[1:3])[0]
    payload = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return kind, payload


async def _audio_chunks(reader: asyncio.StreamReader) -> Any:
    while True:
        try:
            # Asterisk sends 20 ms frames while the call runs; a long silence on the socket
            # means the call is gone.
            kind, payload = await _read_msg(reader, timeout=60)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            return
        if kind == KIND_AUDIO:
            yield payload
        elif kind in (KIND_HANGUP, KIND_ERROR):
            return


def caption_json(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False)
