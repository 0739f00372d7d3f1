"""The intake's reads and writes: a case that arrives without a call (through the case loop,
cases/loop CaseLoop.create_case, with its form, its intake record and the form's audit entry
in the same transaction), the public view of a case for its citizen or channel, and the
intake record for the console.

Personal fields are encrypted on the way in (common.privacy.PersonalData): the form's
subject, address and content as the console's form is (case_forms, case_form_versions), the
citizen's name here, the number on the case with its look-up hash (repeat callers and
repeat complaints find it like a call's)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.access import Scope
from agent_desk.audit import Actor, Audit
from agent_desk.intake.models import IntakeRecord
from agent_desk.intake.public import (
    LeadReply,
    code_hash,
    new_query_code,
    public_state,
    reviewed_reply,
    same_hash,
)
from agent_desk.intake.tokens import ChannelTokens
from agent_desk.models import CATEGORIES, CaseForm, CaseFormVersion
from cases.loop.models import CaseWork, Department, Dispatch
from cases.loop.taxonomy import Taxonomy
from cases.models import Case
from common.errors import DomainError
from common.privacy import PersonalData

log = logging.getLogger(__name__)

Within = Callable[[AsyncSession, Case], Awaitable[None]]


class CaseMaker(Protocol):
    """The case loop (cases/loop/store.py CaseLoop), as the intake uses it."""

    @property
    def taxonomy(self) -> Taxonomy: ...

    async def create_case(self, *, channel: str, city: str | None, caller: str | None,
                          at: datetime | None = None, within: Within | None = None
                          ) -> str: ...


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


class IntakeStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 loop: CaseMaker):
        self.sessions = sessions
        self.personal = personal
        self.loop = loop
        self.channel_tokens = ChannelTokens(sessions)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.loop.taxonomy

    # -- a case arrives ---------------------------------------------------------------------

    async def submit(self, *, channel: str, city: str, caller: str, name: str, subject: str,
                     address: str, content: str, appeal_type: str | None, matter: str | None,
                     actor: Actor, consent_version: str | None = None,
                     token_id: int | None = None, idempotency_key: str | None = None,
                     request_hash: str | None = None, external_ref: str | None = None
                     ) -> dict[str, Any]:
        """The new case (state 受理, ``channel`` recorded): ``number``, ``accepted_at``, and
        for the web form the ``query_code`` (shown once). With an ``idempotency_key`` the
        same key from the same channel answers the case made the first time (``replayed``),
        never a second one; the key with another request is refused."""
        if idempotency_key and (done := await self._replay(
                channel, idempotency_key, request_hash)) is not None:
            return done
        now = datetime.now(UTC)
        code = new_query_code() if channel == "web" else None
        category = appeal_type if appeal_type in CATEGORIES else None
        enc = self.personal.encrypt
        text = {"subject": subject, "address": address, "content": content}

        async def within(session: AsyncSession, case: Case) -> None:
            # The form as the console writes it (agent_desk/cases/store.py save_form): the
            # case page shows it, its first version is kept, its audit entry commits with it.
            session.add(CaseForm(case_id=case.id, category=category, subject_enc=enc(subject),
                                 address_enc=enc(address), content_enc=enc(content),
                                 department="", updated_by=actor.user[:64], version=1,
                                 updated_at=now))
            state = {"category": category, **text, "department": ""}
            fields = sorted(["category"] * bool(category) + [k for k, v in text.items() if v])
            session.add(CaseFormVersion(
                case_id=case.id, version=1, fields=fields, saved_by=actor.user[:64],
                saved_at=now, values_enc=enc(json.dumps(state, ensure_ascii=False))))
            session.add(IntakeRecord(
                case_id=case.id, channel=channel, token_id=token_id,
                idempotency_key=idempotency_key, request_hash=request_hash,
                external_ref=external_ref, name_enc=enc(name.strip()),
                query_code_hash=code_hash(case.number, code) if code else None,
                appeal_type_hint=appeal_type, matter_hint=matter,
                consent_at=now if consent_version else None, consent_version=consent_version,
                created_at=now))
            Audit.add(session, actor, "case.form", case.number,
                      {"fields": fields, "version": 1, "channel": channel})

        try:
            number = await self.loop.create_case(channel=channel, city=city, caller=caller,
                                                 at=now, within=within)
        except IntegrityError:
            # The same key at the same moment: the other request made the case.
            if idempotency_key and (done := await self._replay(
                    channel, idempotency_key, request_hash)) is not None:
                return done
            raise
        log.info("case received without a call", extra={"case": number, "channel": channel,
                                                         "city": city})
        out: dict[str, Any] = {"number": number, "accepted_at": _iso(now),
                               "status": "accepted", "replayed": False,
                               "external_ref": external_ref}
        if code:
            out["query_code"] = code
        return out

    async def _replay(self, channel: str, key: str, request_hash: str | None
                      ) -> dict[str, Any] | None:
        async with self.sessions() as s:
            row = (await s.execute(select(IntakeRecord, Case.number, CaseWork.state).join(
                Case, Case.id == IntakeRecord.case_id).outerjoin(
                CaseWork, CaseWork.case_id == Case.id).where(
                IntakeRecord.channel == channel, IntakeRecord.idempotency_key == key))).first()
        if row is None:
            return None
        rec, number, state = row
        if rec.request_hash != request_hash:
            raise DomainError("invalid", "Idempotency-Key：该键已用于另一份不同的请求（the key was "
                                         "already used for a different request; use a new "
                                         "key for a new case）")
        return {"number": number, "accepted_at": _iso(rec.created_at),
                "status": public_state(state), "replayed": True,
                "external_ref": rec.external_ref}

    # -- what the citizen and the channel see -----------------------------------------------

    async def status(self, number: str, *, phone: str | None = None, code: str | None = None
                     ) -> dict[str, Any] | None:
        """The case's public view if ``phone`` is its caller's number or ``code`` its query
        code; None otherwise, whether the case does not exist or the answer is wrong (the
        same work either way: the comparison is constant-time against a dummy)."""
        async with self.sessions() as s:
            row = (await s.execute(select(Case.id, Case.caller_hash,
                                          IntakeRecord.query_code_hash).outerjoin(
                IntakeRecord, IntakeRecord.case_id == Case.id).where(Case.number == number))
                   ).first()
        if phone is not None:
            ok = same_hash(row.caller_hash if row else None, self.personal.lookup_hash(phone))
        else:
            ok = same_hash(row.query_code_hash if row else None,
                           code_hash(number, code or ""))
        if not ok or row is None:
            return None
        return await self._public(row.id)

    async def channel_case(self, number: str, channel: str) -> dict[str, Any]:
        """A case the channel sent (another channel's or a call's case: not found)."""
        async with self.sessions() as s:
            row = (await s.execute(select(Case.id, IntakeRecord.external_ref).join(
                IntakeRecord, IntakeRecord.case_id == Case.id).where(
                Case.number == number, IntakeRecord.channel == channel))).first()
        if row is None:
            raise DomainError("not_found", f"no case {number} of this channel")
        return {**await self._public(row.id), "external_ref": row.external_ref}

    async def _public(self, case_id: int) -> dict[str, Any]:
        async with self.sessions() as s:
            case = await s.get(Case, case_id)
            assert case is not None
            work = await s.get(CaseWork, case_id)
            leads = [LeadReply(d.round, d.state, d.reply_enc, d.replied_at)
                     for d in (await s.execute(select(Dispatch).where(
                         Dispatch.case_id == case_id, Dispatch.role == "lead"))).scalars()]
            department = (await s.execute(select(Department.name).where(
                Department.id == work.lead_department))).scalar_one_or_none() \
                if work is not None and work.lead_department else None
        state = work.state if work is not None else ("closed" if case.closed_at else None)
        status = public_state(state)
        reply = reviewed_reply(state, work.round if work else 0, leads)
        tax = self.taxonomy
        return {
            "number": case.number, "status": status,
            "channel": work.channel if work is not None else "phone",
            "accepted_at": _iso(work.accepted_at if work is not None else
                                case.arrived_at or case.created_at),
            "appeal_type_name": tax.appeal_types.get(work.appeal_type or "", "")
            if work is not None else "",
            "matter_name": tax.path_names(work.matter) if work and work.matter else "",
            "department_name": (department or "") if status != "accepted" else "",
            "reply": self.personal.decrypt_text(reply.reply_enc) if reply else None,
            "replied_at": _iso(reply.replied_at) if reply else None,
            "closed_at": _iso(case.closed_at) if status == "closed" else None,
        }

    # -- the console ------------------------------------------------------------------------

    async def intake_of(self, number: str, scope: Scope, actor: Actor) -> dict[str, Any]:
        """How a case the user may see arrived (channel, the citizen's name, the channel's
        reference, the suggested classification, the consent); audited as a view."""
        async with self.sessions() as s, s.begin():
            row = (await s.execute(select(IntakeRecord).join(
                Case, Case.id == IntakeRecord.case_id).where(
                Case.number == number, scope.condition()))).scalar_one_or_none()
            if row is None:
                raise DomainError("not_found", f"no case {number} received without a call")
            Audit.add(s, actor, "case.view", number, {"part": "intake"})
        return {"number": number, "channel": row.channel,
                "name": self.personal.decrypt_text(row.name_enc),
                "external_ref": row.external_ref, "appeal_type_hint": row.appeal_type_hint,
                "matter_hint": row.matter_hint, "consent_at": _iso(row.consent_at),
                "consent_version": row.consent_version, "created_at": _iso(row.created_at)}

    # -- the channels' tokens ---------------------------------------------------------------

    async def issue_token(self, channel: str, name: str, actor: Actor
                          ) -> tuple[dict[str, Any], str]:
        return await self.channel_tokens.issue(channel, name, actor)

    async def tokens(self) -> list[dict[str, Any]]:
        return await self.channel_tokens.list()

    async def revoke_token(self, token_id: int, actor: Actor) -> dict[str, Any]:
        return await self.channel_tokens.revoke(token_id, actor)

    async def check_token(self, authorization: str | None) -> tuple[int, str]:
        caller = await self.channel_tokens.check(authorization)
        return caller.token_id, caller.channel
