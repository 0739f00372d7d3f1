"""The audit log: who viewed, exported or changed a case, in which role, from where, when.

Every case view (detail, screen pop, transcript, recording download), export, form change,
close and callback is written here; so are the retention job's purges and every reading of
the log itself. A change and its entry are written in one transaction (``add``), so neither
exists without the other; a read is answered only after its entry is stored (``record``): if
the entry cannot be written, the data is not served.

The console's own administration is here too: users created, passwords reset, roles changed,
users disabled, enabled or deleted, supervisors pausing agents and changing their skills, and
every sign-in, failed sign-in and sign-out; the departments directory's changes, imports and
exports, the departments' API tokens issued and revoked; and the knowledge base's edits,
reviews, imports and exports (the article's ref and version, not its text); and every
supervisor's listening, whispering or barging on an agent's call (start, mode, stop).

The log is tamper-evident: a hash chain (``seal``) gives each entry its place, the previous
entry's hash and SHA-256(previous hash + its own content); ``verify`` (``hotline audit
verify``) recomputes it and names the first entry edited, or the place of one deleted. The
chain is sealed after every write of this module, by the web process every few seconds, and
by ``verify`` before it checks (entries written inside other transactions wait for the next
seal). Someone able to rewrite the whole table could recompute the chain: keep the head
(``verify`` prints it) elsewhere too, e.g. in the service's log.

Entries hold no personal data in clear: case numbers, staff user names, client addresses and
the names of what was touched (a search by caller number records that a number was given,
not the number).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.models import AuditChain, AuditEntry

ACTIONS = (
    "case.view", "case.screen_pop", "case.transcript", "recording.download", "cases.search",
    "case.export", "case.form", "case.close", "callback.call", "callback.outcome",
    "audit.read", "retention.recordings", "retention.transcript", "retention.personal",
    "user.create", "user.password", "user.role", "user.disable", "user.enable", "user.delete",
    "agent.pause", "agent.skills", "session.signin", "session.signin_failed",
    "session.signout", "webhook.retry", "webhook.secret", "webhook.rotate",
    "case.loop", "case.loop_view", "cases.supervision",
    "intake.token_issue", "intake.token_revoke", "followup.request",
    # The case loop on the department's side (agent_desk/departments): 签收, 退单, notes,
    # 答复, 延期申请 by a department's staff or its system; the 承办单位 directory and the
    # departments' API tokens.
    "directory.change", "directory.import", "directory.export",
    "directory.default", "token.issue", "token.revoke",
    "report.view", "report.export",
    # agent_desk/insight: hot-topic alerts read, acknowledged, their cases merged (one entry
    # per case); a suggested classification computed from a case's text.
    "insight.alerts", "insight.acknowledge", "insight.merge", "case.suggestion",
    # The knowledge base (agent_desk/knowledge): edits, reviews, bulk loads and exports.
    "knowledge.create", "knowledge.edit", "knowledge.submit", "knowledge.approve",
    "knowledge.reject", "knowledge.withdraw", "knowledge.import", "knowledge.export",
    # 监听、耳语、强插 from the wallboard (agent_desk/supervision): each start, mode change and
    # stop, with the agent, the mode and the supervisor's phone.
    "monitoring.start", "monitoring.mode", "monitoring.stop",
    # Agent figures and the staffing forecast read or exported (agent_desk/figures); the
    # 质检 sample read, a sampled call scored, an agent reading their own scores.
    "figures.view", "figures.export", "qa.samples", "qa.score", "qa.mine",
    # The console's phone (agent_desk/softphone): its SIP credentials issued to the agent.
    "phone.credentials",
)
SEAL_BATCH = 500
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who does it: a signed-in user (from the session and the request) or the system."""

    user: str
    role: str
    address: str = ""


SYSTEM = Actor("system", "system", "")


def entry(actor: Actor, action: str, case: str | None = None,
          detail: dict[str, Any] | None = None, at: datetime | None = None) -> AuditEntry:
    assert action in ACTIONS, action
    return AuditEntry(at=at or datetime.now(UTC), username=actor.user[:64],
                      role=actor.role[:16], action=action, case_number=case,
                      address=(actor.address or "")[:64], detail=detail or {})


def _iso(v: datetime) -> str:
    return v.isoformat()


def content_hash(prev: str, e: AuditEntry) -> str:
    """SHA-256 of the previous entry's hash and this entry's content (as stored: times in
    UTC to the microsecond, the detail with sorted keys)."""
    at = e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)
    content = [e.id, at.astimezone(UTC).isoformat(), e.username, e.role, e.action,
               e.case_number, e.address, e.detail or {}]
    doc = json.dumps([prev, content], sort_keys=True, ensure_ascii=False,
                     separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


@dataclass
class ChainReport:
    """What ``verify`` found: ``problems`` empty when the chain holds."""

    entries: int = 0
    head: str = ""
    unsealed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Audit:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions
        self.written = 0
        self._sealing = asyncio.Lock()

    async def seal(self) -> int:
        """Chain the entries not yet chained, oldest first; how many were sealed. The head
        row is locked first (an UPDATE: a row lock on PostgreSQL, the write lock on SQLite),
        so two processes never chain the same entries."""
        sealed = 0
        async with self._sealing:
            async with self.sessions() as s:  # nothing pending: no write lock taken
                if (await s.execute(select(AuditEntry.id).where(
                        AuditEntry.chain_seq.is_(None)).limit(1))).first() is None:
                    return 0
            while True:
                async with self.sessions() as s, s.begin():
                    await s.execute(update(AuditChain).where(AuditChain.id == 1)
                                    .values(seq=AuditChain.seq))
                    chain = await s.get(AuditChain, 1)
                    if chain is None:  # created by the migration; a bare create_all lacks it
                        chain = AuditChain(id=1, seq=0, head="")
                        s.add(chain)
                    rows = (await s.execute(
                        select(AuditEntry).where(AuditEntry.chain_seq.is_(None))
                        .order_by(AuditEntry.id).limit(SEAL_BATCH))).scalars().all()
                    for e in rows:
                        chain.seq += 1
                        e.chain_seq, e.prev_hash = chain.seq, chain.head
                        e.hash = chain.head = content_hash(chain.head, e)
                    sealed += len(rows)
                if len(rows) < SEAL_BATCH:
                    return sealed

    async def sealer(self, interval_s: float = 5.0) -> None:
        """Seal every few seconds (the entries other transactions wrote)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.seal()
            except Exception:  # the database away: the next round seals them
                log.warning("audit chain: sealing failed", exc_info=True)

    async def verify(self, *, seal: bool = True) -> ChainReport:
        """Walk the chain in order: every entry's hash recomputed from its content and the
        previous hash, no place in the chain missing, the head where the chain row says."""
        if seal:
            await self.seal()
        report = ChainReport()
        prev: AuditEntry | None = None
        async with self.sessions() as s:
            chain = await s.get(AuditChain, 1)
            report.unsealed = (await s.execute(select(func.count()).where(
                AuditEntry.chain_seq.is_(None)))).scalar_one()
            last = 0
            while True:
                rows = (await s.execute(
                    select(AuditEntry).where(AuditEntry.chain_seq > last)
                    .order_by(AuditEntry.chain_seq).limit(SEAL_BATCH))).scalars().all()
                for e in rows:
                    seq = e.chain_seq or 0
                    if prev is not None:
                        if seq != (prev.chain_seq or 0) + 1:
                            report.problems.append(
                                f"entries {(prev.chain_seq or 0) + 1}..{seq - 1} of the chain "
                                f"are missing (deleted between entry ids {prev.id} and {e.id})")
                        elif e.prev_hash != prev.hash:
                            report.problems.append(f"entry {e.id}: previous hash does not "
                                                   f"match entry {prev.id}")
                    if content_hash(e.prev_hash or "", e) != e.hash:
                        report.problems.append(f"entry {e.id} was changed after it was "
                                               "written (its hash does not match)")
                    prev = e
                    report.entries += 1
                if len(rows) < SEAL_BATCH:
                    break
                last = rows[-1].chain_seq or 0
        if prev is not None:
            report.head = prev.hash or ""
        if chain is not None and chain.seq and (prev is None or chain.seq != prev.chain_seq):
            report.problems.append(f"the chain ends at {prev.chain_seq if prev else 0} but its "
                                   f"head says {chain.seq}: the last entries were deleted")
        return report

    @staticmethod
    def add(session: AsyncSession, actor: Actor, action: str, case: str | None = None,
            detail: dict[str, Any] | None = None) -> None:
        """Inside the caller's transaction: the entry commits (or not) with the change."""
        session.add(entry(actor, action, case, detail))

    async def record(self, actor: Actor, action: str, case: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        """Its own transaction (for reads); raises if it cannot be stored."""
        async with self.sessions() as s, s.begin():
            s.add(entry(actor, action, case, detail))
        self.written += 1
        await self.seal()

    async def record_many(self, actor: Actor, action: str, cases: list[str],
                          detail: dict[str, Any] | None = None) -> None:
        async with self.sessions() as s, s.begin():
            now = datetime.now(UTC)
            s.add_all([entry(actor, action, c, detail, at=now) for c in cases])
        self.written += len(cases)
        await self.seal()

    async def read(self, actor: Actor, *, case: str | None = None, user: str | None = None,
                   action: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int = 100, offset: int = 0
                   ) -> dict[str, Any]:
        """Entries, newest first; the reading itself is written first, in the same
        transaction as the read (so the answer includes it)."""
        filters = {k: v for k, v in (("case", case), ("user", user), ("action", action),
                                     ("from", since.isoformat() if since else None),
                                     ("to", until.isoformat() if until else None)) if v}
        q = select(AuditEntry)
        if case:
            q = q.where(AuditEntry.case_number == case)
        if user:
            q = q.where(AuditEntry.username == user)
        if action:
            q = q.where(AuditEntry.action == action)
        if since:
            q = q.where(AuditEntry.at >= since)
        if until:
            q = q.where(AuditEntry.at < until)
        async with self.sessions() as s, s.begin():
            s.add(entry(actor, "audit.read", case, {"filters": filters}))
            await s.flush()
            total = (await s.execute(select(func.count()).select_from(q.subquery()))
                     ).scalar_one()
            rows = (await s.execute(q.order_by(AuditEntry.id.desc()).limit(limit)
                                    .offset(offset))).scalars().all()
        self.written += 1
        await self.seal()
        return {"total": int(total), "entries": [
            {"id": r.id, "at": _iso(r.at), "user": r.username, "role": r.role,
             "action": r.action, "case": r.case_number, "address": r.address,
             "detail": r.detail or {}} for r in rows]}
