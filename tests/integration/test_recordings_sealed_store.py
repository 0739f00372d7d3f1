"""Sealed recordings in the store (issue 15, medium 4): recordings kept in clear by an earlier
version are sealed when the service starts, and data key rotation rewraps every recording's
file key. Real files, the real database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from asr.models import Recording
from asr.retention import rekey_tables
from common import sealed
from common.facts import CallFact
from common.privacy import PersonalData
from common.rekey import rekey
from tests.support.asr import recorded_call, transcript_status
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


async def test_a_clear_recording_of_an_earlier_version_is_sealed_and_the_row_follows(
        asr_service):
    service = await asr_service(asr={"enabled": False})
    node = service.cfg.nodes[0].id
    call_id = f"{node}:legacy-{time.time_ns()}"
    await service.store.apply(CallFact("arrived", call_id, node, time.time(),
                                       {"caller": "13812345678", "dialed": "12345"}))
    case = await service.store.by_call(call_id)
    clear = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64
    old = service.transcripts.dir / "2025" / "01" / case.number / f"{case.number}-1-mix.wav"
    await asyncio.to_thread(old.parent.mkdir, parents=True)
    await asyncio.to_thread(old.write_bytes, clear)
    async with service.store.sessions() as s, s.begin():
        s.add(Recording(case_id=case.id, side="mix", part=1, path=str(old),
                        url_name=str(old.relative_to(service.transcripts.dir)), offset=0.0))
    assert await service.transcripts.seal_clear_recordings() == 1
    t = await service.transcripts.for_case(case.number)
    (rec,) = t["recordings"]
    stored = Path(rec["path"])
    assert rec["url_name"].endswith(sealed.SUFFIX) and stored.name.endswith(sealed.SUFFIX)
    assert not old.exists()
    assert sealed.read_all(stored, service.transcripts.personal) == clear
    assert stored.parent.stat().st_mode & 0o777 == 0o700
    assert await service.transcripts.seal_clear_recordings() == 0  # nothing left in clear


async def test_rotating_the_data_key_rewraps_every_recordings_file_key(asr_service, sounds):
    service = await asr_service(asr={"enabled": False})
    number = await recorded_call(service, sounds, seconds=2.0)
    t = await eventually(lambda: transcript_status(service, number, ("pending",)),
                         what="the recording stored")
    paths = [Path(r["path"]) for r in t["recordings"]]
    assert len(paths) == 3
    old_key = service.cfg.data_key
    new_key = "rotated-" + old_key
    clear = {p: sealed.read_all(p, PersonalData(old_key)) for p in paths}
    out = await rekey(service.store.sessions,
                      rekey_tables(PersonalData(new_key, previous=[old_key])))
    assert "recordings" in out
    for p in paths:
        assert sealed.read_all(p, PersonalData(new_key)) == clear[p]
        with pytest.raises(sealed.SealedFileError):
            sealed.read_all(p, PersonalData(old_key))
