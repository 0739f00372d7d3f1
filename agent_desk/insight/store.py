"""The insight room's reads and writes (SQLite or PostgreSQL): the texts still to count, the
counts of a window, the alerts and their cases, suggestions and trained models.

Texts are decrypted here only to be cleaned and segmented by the caller (services.py); what
is written back is keyed hashes of words and counts, never a text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.insight.detector import KEYWORD, MATTER, Plan, Signal
from agent_desk.insight.models import (
    CaseTerm,
    ClassifierModel,
    HotAlert,
    HotAlertCase,
    Indexed,
    Suggestion,
)
from agent_desk.models import CaseForm
from asr.models import Transcript, TranscriptSegment
from cases.loop.models import CaseWork
from cases.models import Case
from common.privacy import PersonalData

SEP = "|"


def matter_key(city: str | None, district: str | None, matter: str) -> str:
    return SEP.join((MATTER, city or "", district or "", matter))


def keyword_key(city: str | None, term: str) -> str:
    return SEP.join((KEYWORD, city or "", term))


@dataclass(frozen=True)
class CaseText:
    """A case's text to count (or to train on), decrypted: kept in memory for one pass."""

    case_id: int
    number: str
    city: str | None
    at: datetime
    form_version: int
    transcript: bool  # a finished transcript is part of the text
    text: str
    matter: str | None = None


@dataclass(frozen=True)
class Counted:
    """What a pass writes for one case: its words' hashes, and how far it was counted."""

    case_id: int
    city: str | None
    at: datetime
    terms: frozenset[str]
    form_version: int
    transcript: bool


def _at() -> Any:
    return func.coalesce(Case.arrived_at, Case.created_at)


class InsightStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData):
        self.sessions = sessions
        self.personal = personal

    # -- texts ------------------------------------------------------------------------------

    async def _texts(self, session: AsyncSession, rows: Sequence[Any], with_transcript: bool
                     ) -> list[CaseText]:
        ids = [r.id for r in rows]
        said: dict[int, list[str]] = defaultdict(list)
        if with_transcript and ids:
            for case_id, enc in (await session.execute(
                    select(Transcript.case_id, TranscriptSegment.text_enc)
                    .join(TranscriptSegment, TranscriptSegment.transcript_id == Transcript.id)
                    .where(Transcript.case_id.in_(ids), Transcript.status == "done")
                    .order_by(Transcript.case_id, TranscriptSegment.start))).all():
                said[case_id].append(self.personal.decrypt_text(enc))
        dec = self.personal.decrypt_text
        out = []
        for r in rows:
            parts = [dec(r.subject_enc), dec(r.content_enc), *said.get(r.id, ())]
            out.append(CaseText(r.id, r.number, r.city, r.at, r.form_version or 0,
                                bool(r.transcript_done), "\n".join(p for p in parts if p),
                                getattr(r, "matter", None)))
        return out

    async def to_count(self, now: datetime, horizon: timedelta, batch: int,
                       recheck: timedelta = timedelta(days=1)) -> list[CaseText]:
        """Cases whose text is not counted yet, or has grown since (a later form version, a
        transcript finished): new cases by id, and the last day's cases again (a case
        committed late, a form saved after the call)."""
        done = (Transcript.status == "done")
        cols = (Case.id, Case.number, Case.city, _at().label("at"),
                CaseForm.version.label("form_version"), CaseForm.subject_enc,
                CaseForm.content_enc, done.label("transcript_done"))
        async with self.sessions() as s:
            mark = (await s.execute(select(func.max(Indexed.case_id)))).scalar() or 0
            base = (select(*cols).outerjoin(CaseForm, CaseForm.case_id == Case.id)
                    .outerjoin(Transcript, Transcript.case_id == Case.id)
                    .outerjoin(Indexed, Indexed.case_id == Case.id))
            fresh = (await s.execute(base.where(Case.id > mark, _at() >= now - horizon)
                                     .order_by(Case.id).limit(batch))).all()
            grown = (await s.execute(base.where(
                Case.created_at >= now - recheck, _at() >= now - horizon,
                or_(Indexed.case_id.is_(None),
                    func.coalesce(CaseForm.version, 0) > Indexed.form_version,
                    and_(done, Indexed.transcript.is_(False))))
                .order_by(Case.id).limit(batch))).all()
            rows = list({r.id: r for r in (*fresh, *grown)}.values())[:batch]
            return await self._texts(s, rows, with_transcript=True)

    async def save_counted(self, items: Sequence[Counted], now: datetime) -> int:
        """The words of these cases (only those not counted before), and how far each case is
        counted. Returns the words added."""
        if not items:
            return 0
        ids = [c.case_id for c in items]
        added = 0
        async with self.sessions() as s, s.begin():
            have: dict[int, set[str]] = defaultdict(set)
            for case_id, term in (await s.execute(select(CaseTerm.case_id, CaseTerm.term)
                                                  .where(CaseTerm.case_id.in_(ids)))).all():
                have[case_id].add(term)
            marks = {m.case_id: m for m in (await s.execute(
                select(Indexed).where(Indexed.case_id.in_(ids)))).scalars()}
            for c in items:
                new = sorted(c.terms - have[c.case_id])
                s.add_all(CaseTerm(case_id=c.case_id, term=t, city=c.city, at=c.at)
                          for t in new)
                added += len(new)
                m = marks.get(c.case_id)
                if m is None:
                    s.add(Indexed(case_id=c.case_id, form_version=c.form_version,
                                  transcript=c.transcript, indexed_at=now))
                else:
                    m.form_version = max(m.form_version, c.form_version)
                    m.transcript = m.transcript or c.transcript
                    m.indexed_at = now
        return added

    async def prune_terms(self, before: datetime) -> int:
        async with self.sessions() as s, s.begin():
            result = await s.execute(delete(CaseTerm).where(CaseTerm.at < before))
        return int(getattr(result, "rowcount", 0) or 0)

    async def texts_of(self, case_ids: Iterable[int]) -> list[CaseText]:
        ids = list(case_ids)
        if not ids:
            return []
        async with self.sessions() as s:
            rows = (await s.execute(self._text_query().where(Case.id.in_(ids)))).all()
            return await self._texts(s, rows, with_transcript=True)

    def _text_query(self) -> Any:
        return (select(Case.id, Case.number, Case.city, _at().label("at"),
                       CaseForm.version.label("form_version"), CaseForm.subject_enc,
                       CaseForm.content_enc,
                       (Transcript.status == "done").label("transcript_done"),
                       CaseWork.matter)
                .outerjoin(CaseForm, CaseForm.case_id == Case.id)
                .outerjoin(Transcript, Transcript.case_id == Case.id)
                .outerjoin(CaseWork, CaseWork.case_id == Case.id))

    async def text_of(self, number: str, visible: Any) -> tuple[CaseText, str | None] | None:
        """One case's text and city, within the asker's need-to-know (None: not visible)."""
        async with self.sessions() as s:
            row = (await s.execute(self._text_query().where(
                Case.number == number, true() if visible is None else visible))).first()
            if row is None:
                return None
            return (await self._texts(s, [row], with_transcript=True))[0], row.city

    async def confirmed(self, limit: int) -> list[CaseText]:
        """The latest cases agents classified, with their text (training and measuring)."""
        async with self.sessions() as s:
            rows = (await s.execute(self._text_query().where(CaseWork.matter.is_not(None))
                                    .order_by(Case.id.desc()).limit(limit))).all()
            return [t for t in await self._texts(s, rows, with_transcript=True) if t.text]

    # -- counts -----------------------------------------------------------------------------

    async def matter_window(self, start: datetime, end: datetime, min_count: int
                            ) -> dict[str, tuple[tuple[str | None, str | None, str],
                                                 set[int]]]:
        """The classified cases that arrived in [start, end), by 事项 and district, for the
        series with at least ``min_count`` of them."""
        async with self.sessions() as s:
            rows = (await s.execute(select(CaseWork.case_id, CaseWork.city, CaseWork.district,
                                           CaseWork.matter).where(
                CaseWork.accepted_at >= start, CaseWork.accepted_at < end,
                CaseWork.matter.is_not(None)))).all()
        out: dict[str, tuple[tuple[str | None, str | None, str], set[int]]] = {}
        for case_id, city, district, matter in rows:
            assert matter is not None  # the query's condition
            key = matter_key(city, district, matter)
            out.setdefault(key, ((city, district, matter), set()))[1].add(case_id)
        return {k: v for k, v in out.items() if len(v[1]) >= min_count}

    async def matter_counts(self, start: datetime, end: datetime, matters: set[str]
                            ) -> dict[str, int]:
        if not matters:
            return {}
        async with self.sessions() as s:
            rows = (await s.execute(select(CaseWork.city, CaseWork.district, CaseWork.matter,
                                           func.count()).where(
                CaseWork.accepted_at >= start, CaseWork.accepted_at < end,
                CaseWork.matter.in_(sorted(matters)))
                .group_by(CaseWork.city, CaseWork.district, CaseWork.matter))).all()
        return {matter_key(c, d, m or ""): int(n) for c, d, m, n in rows}

    async def live(self, kind: str, start: datetime, end: datetime) -> bool:
        """Whether any case (``kind`` MATTER: classified; KEYWORD: with counted words)
        arrived in [start, end): a baseline week before the service ran, or before this room
        counted words, is missing, not a week of zero cases."""
        q = select(CaseWork.case_id).where(CaseWork.accepted_at >= start,
                                           CaseWork.accepted_at < end) if kind == MATTER \
            else select(CaseTerm.case_id).where(CaseTerm.at >= start, CaseTerm.at < end)
        async with self.sessions() as s:
            return (await s.execute(q.limit(1))).first() is not None

    async def keyword_window(self, start: datetime, end: datetime, min_count: int
                             ) -> dict[str, tuple[tuple[str | None, str], set[int]]]:
        """The cases of [start, end) holding each word, per city, for the words in at least
        ``min_count`` of them."""
        async with self.sessions() as s:
            hot = (await s.execute(select(CaseTerm.city, CaseTerm.term).where(
                CaseTerm.at >= start, CaseTerm.at < end)
                .group_by(CaseTerm.city, CaseTerm.term)
                .having(func.count() >= min_count))).all()
            if not hot:
                return {}
            terms = sorted({t for _c, t in hot})
            wanted = {(c, t) for c, t in hot}
            out: dict[str, tuple[tuple[str | None, str], set[int]]] = {}
            for i in range(0, len(terms), 500):
                for case_id, city, term in (await s.execute(
                        select(CaseTerm.case_id, CaseTerm.city, CaseTerm.term).where(
                            CaseTerm.at >= start, CaseTerm.at < end,
                            CaseTerm.term.in_(terms[i:i + 500])))).all():
                    if (city, term) in wanted:
                        out.setdefault(keyword_key(city, term), ((city, term), set())
                                       )[1].add(case_id)
        return out

    async def keyword_counts(self, start: datetime, end: datetime, terms: set[str]
                             ) -> dict[str, int]:
        out: dict[str, int] = {}
        ordered = sorted(terms)
        async with self.sessions() as s:
            for i in range(0, len(ordered), 500):
                for city, term, n in (await s.execute(
                        select(CaseTerm.city, CaseTerm.term, func.count()).where(
                            CaseTerm.at >= start, CaseTerm.at < end,
                            CaseTerm.term.in_(ordered[i:i + 500]))
                        .group_by(CaseTerm.city, CaseTerm.term))).all():
                    out[keyword_key(city, term)] = int(n)
        return out

    # -- alerts -----------------------------------------------------------------------------

    async def open_alerts(self) -> list[tuple[HotAlert, set[int]]]:
        async with self.sessions() as s:
            alerts = list((await s.execute(select(HotAlert).where(
                HotAlert.closed_at.is_(None)).order_by(HotAlert.id))).scalars())
            cases: dict[int, set[int]] = defaultdict(set)
            if alerts:
                for alert_id, case_id in (await s.execute(
                        select(HotAlertCase.alert_id, HotAlertCase.case_id).where(
                            HotAlertCase.alert_id.in_([a.id for a in alerts])))).all():
                    cases[alert_id].add(case_id)
        return [(a, cases[a.id]) for a in alerts]

    async def apply(self, plan: Plan, now: datetime, words: dict[str, str],
                    notify: Any = None) -> tuple[list[int], list[int]]:
        """Write a pass's plan: open alerts updated, new ones opened (``notify`` called in the
        same transaction: the announcement is written if and only if the alert is), subsided
        ones closed. ``words``: the clear word of keyword hashes, where found. Returns the
        ids opened and closed."""
        opened: list[int] = []
        async with self.sessions() as s, s.begin():
            for b in plan.bursts:
                if b.id is None:
                    lead = b.lead
                    alert = HotAlert(
                        kind=lead.kind, series=lead.key, city=lead.city,
                        district=lead.district, matter=lead.matter,
                        term=words.get(lead.term or ""), signals=[], open_key=lead.key,
                        opened_at=now, last_warm_at=now, observed=lead.verdict.observed,
                        expected=lead.verdict.expected, p_value=lead.verdict.p, peak=0,
                        cases=0)
                    s.add(alert)
                    await s.flush()
                    opened.append(alert.id)
                else:
                    found = await s.get(HotAlert, b.id)
                    if found is None or found.closed_at is not None:
                        continue
                    alert = found
                alert.last_warm_at = now
                signals = {d["key"]: d for d in alert.signals or []}
                for sig in b.signals:
                    signals[sig.key] = _signal_doc(sig, words, signals.get(sig.key))
                alert.signals = sorted(signals.values(), key=lambda d: (d["kind"] != MATTER,
                                                                       d["p"]))
                alert.peak = max([alert.peak, *(x.verdict.observed for x in b.signals)])
                if alert.term is None:
                    alert.term = next((words[x.term] for x in b.signals
                                       if x.term and x.term in words), None)
                if b.added:
                    s.add_all(HotAlertCase(alert_id=alert.id, case_id=c, added_at=now)
                              for c in sorted(b.added))
                alert.cases = alert.cases + len(b.added)
                if b.id is None and notify is not None:
                    await s.flush()
                    await notify(s, alert)
            if plan.close:
                await s.execute(update(HotAlert).where(HotAlert.id.in_(plan.close),
                                                       HotAlert.closed_at.is_(None))
                                .values(closed_at=now, open_key=None))
        return opened, list(plan.close)

    async def alerts(self, *, city: str | None, status: str, limit: int) -> list[HotAlert]:
        async with self.sessions() as s:
            q = select(HotAlert).order_by(HotAlert.opened_at.desc(), HotAlert.id.desc())
            if status == "open":
                q = q.where(HotAlert.closed_at.is_(None))
            elif status == "closed":
                q = q.where(HotAlert.closed_at.is_not(None))
            if city is not None:
                q = q.where(HotAlert.city == city)
            return list((await s.execute(q.limit(limit))).scalars())

    async def alert(self, alert_id: int, city: str | None) -> HotAlert | None:
        async with self.sessions() as s:
            a = await s.get(HotAlert, alert_id)
        if a is None or (city is not None and a.city != city):
            return None
        return a

    async def alert_cases(self, alert_ids: Sequence[int], visible: Any
                          ) -> dict[int, list[dict[str, Any]]]:
        """The cases behind the alerts that the asker may see, earliest first."""
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in alert_ids}
        if not alert_ids:
            return out
        async with self.sessions() as s:
            rows = (await s.execute(
                select(HotAlertCase.alert_id, Case.number, Case.city, _at().label("at"),
                       CaseWork.state, CaseWork.matter, CaseWork.district,
                       CaseWork.merged_into)
                .join(Case, Case.id == HotAlertCase.case_id)
                .outerjoin(CaseWork, CaseWork.case_id == Case.id)
                .where(HotAlertCase.alert_id.in_(list(alert_ids)),
                       true() if visible is None else visible)
                .order_by(_at(), Case.id))).all()
        for r in rows:
            out[r.alert_id].append({"number": r.number, "city": r.city, "at": r.at,
                                    "state": r.state or "accepted", "matter": r.matter,
                                    "district": r.district,
                                    "merged": r.merged_into is not None})
        return out

    async def acknowledge(self, alert_id: int, user: str, now: datetime) -> HotAlert | None:
        """The first acknowledgement stays (a second one changes nothing)."""
        async with self.sessions() as s, s.begin():
            a = await s.get(HotAlert, alert_id)
            if a is not None and a.acknowledged_at is None:
                a.acknowledged_by, a.acknowledged_at = user, now
            return a

    async def merged(self, alert_id: int, into: str, user: str, now: datetime) -> None:
        async with self.sessions() as s, s.begin():
            a = await s.get(HotAlert, alert_id)
            if a is not None:
                a.merged_into, a.merged_by, a.merged_at = into, user, now

    # -- suggestions and models -------------------------------------------------------------

    async def shown(self, case_id: int, *, matter: str | None, department: str | None,
                    confidence: float, source: str, model_id: int | None, user: str,
                    now: datetime) -> None:
        """The suggestion the form showed last (one row per case)."""
        async with self.sessions() as s, s.begin():
            row = await s.get(Suggestion, case_id)
            if row is None:
                row = Suggestion(case_id=case_id)
                s.add(row)
            row.matter, row.department, row.confidence = matter, department, confidence
            row.source, row.model_id, row.shown_at, row.shown_to = source, model_id, now, user
            row.confirmed_matter = row.accepted = row.confirmed_at = None

    async def reconcile(self, now: datetime) -> int:
        """Suggestions of cases classified since: the 事项 chosen, and whether it was ours."""
        async with self.sessions() as s, s.begin():
            rows = (await s.execute(select(Suggestion, CaseWork.matter)
                                    .join(CaseWork, CaseWork.case_id == Suggestion.case_id)
                                    .where(Suggestion.confirmed_matter.is_(None),
                                           CaseWork.matter.is_not(None)))).all()
            for sug, matter in rows:
                sug.confirmed_matter, sug.accepted = matter, matter == sug.matter
                sug.confirmed_at = now
        return len(rows)

    async def acceptance(self, since: datetime) -> dict[str, Any]:
        async with self.sessions() as s:
            rows = (await s.execute(select(Suggestion.source, Suggestion.accepted, func.count())
                                    .where(Suggestion.shown_at >= since)
                                    .group_by(Suggestion.source, Suggestion.accepted))).all()
        out: dict[str, Any] = {}
        for source, accepted, n in rows:
            d = out.setdefault(source, {"shown": 0, "confirmed": 0, "accepted": 0})
            d["shown"] += int(n)
            if accepted is not None:
                d["confirmed"] += int(n)
                d["accepted"] += int(n) if accepted else 0
        for d in out.values():
            d["acceptance"] = round(d["accepted"] / d["confirmed"], 4) if d["confirmed"] \
                else None
        return out

    async def save_model(self, model: ClassifierModel) -> int:
        async with self.sessions() as s, s.begin():
            s.add(model)
            await s.flush()
            return model.id

    async def latest_model(self, *, active: bool) -> ClassifierModel | None:
        async with self.sessions() as s:
            q = select(ClassifierModel).order_by(ClassifierModel.id.desc()).limit(1)
            if active:
                q = q.where(ClassifierModel.active.is_(True))
            return (await s.execute(q)).scalar_one_or_none()

    async def models(self, limit: int) -> list[ClassifierModel]:
        async with self.sessions() as s:
            return list((await s.execute(select(ClassifierModel).order_by(
                ClassifierModel.id.desc()).limit(limit))).scalars())

    async def case_ids(self, numbers: Iterable[str]) -> dict[str, int]:
        async with self.sessions() as s:
            return {n: i for i, n in (await s.execute(select(Case.id, Case.number).where(
                Case.number.in_(list(numbers))))).all()}


def _signal_doc(s: Signal, words: dict[str, str], before: dict[str, Any] | None
                ) -> dict[str, Any]:
    v = s.verdict
    return {"kind": s.kind, "key": s.key, "city": s.city, "district": s.district,
            "matter": s.matter,
            "term": words.get(s.term or "") or (before or {}).get("term"),
            "observed": v.observed, "expected": round(v.expected, 3), "p": v.p,
            "peak": max(v.observed, int((before or {}).get("peak") or 0))}
