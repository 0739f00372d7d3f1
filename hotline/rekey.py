"""Data key rotation: re-encrypt every personal field with the current key and recompute the
callers' look-up hashes (``hotline privacy rekey``).

Run it with the services stopped, the new key in HOTLINE_DATA_KEY and the old one(s) in
HOTLINE_DATA_KEY_PREVIOUS; then start the services with the new key only. Each batch is one
transaction, and a value already under the current key is re-encrypted harmlessly, so an
interrupted run is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.models import CallbackTask, CaseForm
from asr.models import TranscriptSegment
from cases.models import CallerProfile, CallEvent, Case
from common.privacy import PersonalData

BATCH = 500


async def _each(sessions: async_sessionmaker[AsyncSession], model: Any,
                fix: Callable[[Any], bool], where: Any = None) -> int:
    """Apply ``fix`` to every row, in batches by id; returns how many rows changed."""
    changed = 0
    last = 0
    while True:
        async with sessions() as s, s.begin():
            q = select(model).where(model.id > last)
            if where is not None:
                q = q.where(where)
            rows = list((await s.execute(q.order_by(model.id).limit(BATCH))).scalars())
            if not rows:
                return changed
            for r in rows:
                changed += bool(fix(r))
            last = rows[-1].id


async def rekey(sessions: async_sessionmaker[AsyncSession], pd: PersonalData,
                progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    re = pd.reencrypt

    def case(c: Case) -> bool:
        number = pd.decrypt(c.caller_enc)
        c.caller_enc, c.caller_name_enc = re(c.caller_enc), re(c.caller_name_enc)
        if number:
            c.caller_hash = pd.lookup_hash(number)
        return True

    def profile(p: CallerProfile) -> bool:
        number = pd.decrypt(p.caller_enc)
        p.caller_enc = re(p.caller_enc) or p.caller_enc
        p.caller_hash = pd.lookup_hash(number) or p.caller_hash
        return True

    def form(f: CaseForm) -> bool:
        f.subject_enc, f.address_enc, f.content_enc = (
            re(f.subject_enc), re(f.address_enc), re(f.content_enc))
        return True

    def segment(g: TranscriptSegment) -> bool:
        g.text_enc = re(g.text_enc)
        return True

    def task(t: CallbackTask) -> bool:
        if not any("note_enc" in e for e in (t.log or [])):
            return False
        t.log = [{**e, "note_enc": re(e["note_enc"])} if "note_enc" in e else e
                 for e in t.log]
        return True

    def event(e: CallEvent) -> bool:
        if not e.detail or "note_enc" not in e.detail:
            return False
        e.detail = {**e.detail, "note_enc": re(e.detail["note_enc"])}
        return True

    out: dict[str, int] = {}
    for name, model, fix, where in (
            ("cases", Case, case, Case.caller_enc.is_not(None)),
            ("caller_profiles", CallerProfile, profile, None),
            ("case_forms", CaseForm, form, None),
            ("transcript_segments", TranscriptSegment, segment, None),
            ("callback_tasks", CallbackTask, task, None),
            ("call_events", CallEvent, event, CallEvent.kind.like("callback%"))):
        out[name] = await _each(sessions, model, fix, where)
        if progress is not None:
            progress(name, out[name])
    return out
