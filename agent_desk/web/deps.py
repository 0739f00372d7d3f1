"""What the web layer is given: the collaborators of every feature's HTTP module, typed by
the Protocols below (what the handlers call, nothing more). The composition root builds one
``ConsoleDeps`` (hotline/desk.py); the features read it, never the service."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis

from agent_desk.access import CurrentCall, Scope
from agent_desk.audit import Actor, Audit
from agent_desk.models import PROVINCE
from agent_desk.web.auth import ApiClient, Session, SessionGate, Sessions, Users
from agent_desk.web.login_limits import LoginLimiter
from cases.loop.lists import SupervisionFilter
from cases.loop.models import Department
from cases.loop.reports import Period, PeriodKind, Query, Report
from cases.loop.states import Actor as LoopActor
from cases.loop.states import Command
from cases.loop.store import DepartmentEntry, Details, Within, Witness
from cases.loop.taxonomy import Taxonomy
from cases.models import Case
from common.config import Config, WebSection
from common.facts import CallFact
from common.privacy import PersonalData


class CaseDesk(Protocol):
    """The console's side of the case records (agent_desk/cases/store.py ConsoleStore)."""

    @property
    def tz(self) -> tzinfo: ...  # the centre's time zone (dates in queries and exports)

    async def case_by(self, *, number: str | None, call_id: str | None = None
                      ) -> Case | None: ...
    # Every read and change below is limited to the asker's Scope (agent_desk/access.py).
    async def visible(self, number: str, scope: Scope) -> Case: ...
    async def earlier(self, case: Case, scope: Scope) -> list[dict[str, Any]]: ...
    async def save_form(self, number: str, values: dict[str, str], *, by: str, scope: Scope,
                        version: int | None = None, actor: Actor | None = None
                        ) -> dict[str, Any]: ...
    async def form_versions(self, number: str, scope: Scope) -> list[dict[str, Any]]: ...
    async def close(self, number: str, actor: Actor, scope: Scope
                    ) -> tuple[Case, str | None]: ...
    async def search(self, scope: Scope, *, caller_hash: str | None = None,
                     day_from: date | None = None, day_to: date | None = None,
                     city: str | None = None, category: str | None = None,
                     status: str | None = None, limit: int = 50, offset: int = 0,
                     clear: bool = False) -> dict[str, Any]: ...
    async def export(self, actor: Actor, scope: Scope, *, clear: bool, fmt: str,
                     **filters: Any) -> tuple[list[dict[str, Any]], str]: ...
    async def detail(self, number: str, *, clear: bool, scope: Scope) -> dict[str, Any]: ...
    async def callbacks(self, scope: Scope, *, status: str | None = None,
                        city: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
    async def begin_callback(self, task_id: int, agent_id: str, scope: Scope,
                             actor: Actor | None = None) -> tuple[dict[str, Any], str]: ...
    async def finish_callback(self, task_id: int, outcome: str, *, by: str, scope: Scope,
                              note: str = "", actor: Actor | None = None
                              ) -> dict[str, Any]: ...


class Board(Protocol):
    """The supervisors' live projection (agent_desk/supervision/wallboard.py Wallboard)."""

    agents: dict[str, dict[str, Any]]
    calls: dict[str, dict[str, Any]]

    def snapshot(self) -> dict[str, Any]: ...
    # Today's 一键评价 figures per city and queue, from the case records.
    async def satisfaction(self) -> dict[str, Any]: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Presence(Protocol):
    """Agents' sign-in and pause (agent_desk/presence/services.py AgentPresence)."""

    def node_of(self, agent_id: str) -> str: ...
    def is_signed_in(self, agent_id: str) -> bool: ...
    async def sign_in(self, agent_id: str, *, by: str) -> int: ...
    async def sign_out(self, agent_id: str, *, by: str) -> int: ...
    async def pause(self, agent_id: str, paused: bool, *, reason: str = "", by: str
                    ) -> None: ...


class LiveState(Protocol):
    async def agent(self, agent_id: str) -> dict[str, str]: ...
    async def call(self, call_id: str) -> dict[str, str]: ...


class Leg(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


class CallControl(Protocol):
    """telephony.transfers.services.CallControl, as the console uses it."""

    def legs(self, call_id: str) -> list[Any]: ...
    async def transfer(self, *, call_id: str, agent_id: str, target: str,
                       mode: str) -> dict[str, Any]: ...
    # Plain defs: call control's actions are wrapped (each logs with its call and case).
    def three_way(self, call: str, agent_id: str) -> Awaitable[Leg]: ...
    def leave(self, call: str, agent_id: str) -> Awaitable[Leg]: ...
    def cancel(self, call: str, agent_id: str) -> Awaitable[Leg]: ...


class Monitoring(Protocol):
    """监听、耳语、强插 (telephony/monitoring/services.py Monitoring), as the wallboard and the
    agent's console use it."""

    @property
    def agent_sees(self) -> bool: ...

    async def join(self, agent_id: str, *, phone: str, supervisor: str, mode: str
                   ) -> Any: ...
    async def switch(self, session_id: str, mode: str, *, supervisor: str) -> Any: ...
    async def leave(self, session_id: str, *, supervisor: str) -> Any: ...
    def recent(self) -> Sequence[Any]: ...
    def session(self, session_id: str) -> Any: ...
    def of_agent(self, agent_id: str) -> Any: ...


class CaseFacts(Protocol):
    """The case store of the call facts (cases/store.py)."""

    async def apply(self, fact: CallFact) -> Any: ...
    def cached_number(self, call_id: str) -> str | None: ...
    async def written_for_agent(self, agent: str) -> None: ...
    async def links(self, number: str) -> list[tuple[str, str]]: ...


class RepeatCallers(Protocol):
    async def case_closed(self, caller_hash: str | None) -> None: ...


class SkillChange(Protocol):
    before: dict[str, int]
    after: dict[str, int]
    applied: int


class Skills(Protocol):
    def of(self, agent_id: str) -> dict[str, int]: ...
    async def change(self, agent_id: str, skills: dict[str, int], *, by: str) -> Any: ...


class Ami(Protocol):
    async def originate(self, *, channel: str, context: str | None = ...,
                        exten: str | None = ..., application: str | None = ...,
                        data: str | None = ..., caller_id: str | None = ...,
                        timeout_s: float = ..., variables: dict[str, str] | None = ...
                        ) -> Any: ...
    async def send_list(self, action: dict[str, Any]) -> list[Any]: ...
    async def send(self, action: dict[str, Any], *, timeout: float | None = ...,
                   check: bool = ...) -> Any: ...
    async def hangup(self, channel: str) -> Any: ...


class Transcripts(Protocol):
    @property
    def dir(self) -> Path | None: ...  # where the recordings are

    async def for_case(self, case_number: str) -> dict[str, Any]: ...


class VideoDesk(Protocol):
    """The sign-language seat's video recordings (asr/video.py VideoRecordings)."""

    async def put(self, number: str, agent: str, seq: int, data: bytes
                  ) -> dict[str, Any]: ...
    async def close(self, number: str, agent: str, pieces: int) -> dict[str, Any]: ...


class Surge(Protocol):
    async def status(self) -> dict[str, Any]: ...
    async def proposal(self, city_or_queue: str) -> dict[str, Any]: ...
    async def apply(self, proposal_id: str, by: str) -> dict[str, Any]: ...
    async def return_agents(self, agent_ids: list[str], by: str) -> dict[str, Any]: ...
    async def moves(self, limit: int) -> list[dict[str, Any]]: ...


class FollowUps(Protocol):
    """The 回访 worker (agent_desk/followup/worker.py FollowUpWorker)."""

    async def request(self, number: str, *, by: str) -> dict[str, Any]: ...
    async def tasks(self, *, state: str | None = None, visible: Any = None
                    ) -> list[dict[str, Any]]: ...


class CaseLoopDesk(Protocol):
    """The case loop (cases/loop/store.py CaseLoop), as the console uses it."""

    @property
    def taxonomy(self) -> Taxonomy: ...

    def district_name(self, city: str | None, district: str | None) -> str: ...

    async def act(self, number: str, actor: LoopActor, cmd: Command,
                  details: Details | None = None, *, visible: Any = None,
                  idempotency_key: str | None = None, witness: Witness | None = None
                  ) -> dict[str, Any]: ...
    async def view(self, number: str, *, visible: Any = None, clear_text: bool = True
                   ) -> dict[str, Any]: ...
    async def supervision(self, f: SupervisionFilter, *, visible: Any = None,
                          clear_text: bool = True) -> dict[str, Any]: ...
    async def create_case(self, *, channel: str, city: str | None, caller: str | None,
                          at: datetime | None = None, within: Within | None = None
                          ) -> str: ...
    async def departments(self, *, city: str | None = None, active_only: bool = True
                          ) -> list[Department]: ...
    async def upsert_departments(self, entries: Sequence[DepartmentEntry]) -> int: ...
    async def set_default(self, matter: str, city: str | None, department_id: str
                          ) -> None: ...
    async def delete_default(self, matter: str, city: str | None) -> bool: ...
    async def suggested_department(self, matter: str | None, city: str | None
                                   ) -> str | None: ...


class WebhookDesk(Protocol):
    """Webhooks to departments, as the admin sees them (agent_desk/webhooks/services.py
    WebhookAdmin)."""

    async def deliveries(self, *, state: str | None = None, department: str | None = None,
                         case: str | None = None, limit: int = 100, offset: int = 0
                         ) -> list[dict[str, Any]]: ...
    async def retry(self, delivery_id: int, actor: Actor) -> dict[str, Any]: ...
    async def departments(self) -> list[dict[str, Any]]: ...
    async def reveal(self, department: str, actor: Actor) -> dict[str, Any]: ...
    async def rotate(self, department: str, actor: Actor) -> dict[str, Any]: ...


class IntakeDesk(Protocol):
    """Cases that arrive without a call: the public form, the channels' API and their
    tokens (agent_desk/intake/store.py IntakeStore)."""

    @property
    def taxonomy(self) -> Taxonomy: ...

    async def submit(self, *, channel: str, city: str, caller: str, name: str, subject: str,
                     address: str, content: str, appeal_type: str | None, matter: str | None,
                     actor: Actor, consent_version: str | None = None,
                     token_id: int | None = None, idempotency_key: str | None = None,
                     request_hash: str | None = None, external_ref: str | None = None
                     ) -> dict[str, Any]: ...
    async def status(self, number: str, *, phone: str | None = None, code: str | None = None
                     ) -> dict[str, Any] | None: ...
    async def channel_case(self, number: str, channel: str) -> dict[str, Any]: ...
    async def intake_of(self, number: str, scope: Scope, actor: Actor) -> dict[str, Any]: ...
    async def issue_token(self, channel: str, name: str, actor: Actor
                          ) -> tuple[dict[str, Any], str]: ...
    async def tokens(self) -> list[dict[str, Any]]: ...
    async def revoke_token(self, token_id: int, actor: Actor) -> dict[str, Any]: ...
    async def check_token(self, authorization: str | None) -> tuple[int, str]: ...


class Departments(Protocol):
    """The department's side of the loop and the directory (agent_desk/departments/services.py
    DepartmentDesk). Every case read and change is limited to the asker's Scope."""

    async def department(self, department: str | None) -> dict[str, Any]: ...
    async def cases(self, scope: Scope, who: Actor, *, tab: str = ..., limit: int = ...,
                    offset: int = ..., via: str = ...) -> dict[str, Any]: ...
    async def case(self, number: str, scope: Scope, who: Actor, *, via: str = ...,
                   record: bool = ...) -> dict[str, Any]: ...
    async def act(self, number: str, action: str, scope: Scope, who: Actor, *,
                  text: str = ..., contacted: bool | None = ..., days: int = ...,
                  idempotency_key: str | None = ..., via: str = ...) -> dict[str, Any]: ...
    async def directory(self, *, city: str | None = ..., include_inactive: bool = ...
                        ) -> list[dict[str, Any]]: ...
    async def save(self, entry: DepartmentEntry, who: Actor, *, keep_webhook: bool = ...
                   ) -> dict[str, Any]: ...
    async def set_active(self, department: str, active: bool, who: Actor
                         ) -> dict[str, Any]: ...
    async def import_csv(self, text: str, who: Actor, *, dry_run: bool = ...
                         ) -> dict[str, Any]: ...
    async def export_csv(self, who: Actor) -> str: ...
    async def defaults(self) -> dict[str, Any]: ...
    async def set_default(self, matter: str, city: str | None, department: str, who: Actor
                          ) -> None: ...
    async def delete_default(self, matter: str, city: str | None, who: Actor) -> None: ...
    async def users(self, department: str) -> list[dict[str, Any]]: ...
    def city_names(self) -> dict[str, str]: ...


class ApiTokens(Protocol):
    """Departments' API tokens (agent_desk/departments/tokens.py DepartmentTokens)."""

    async def client(self, authorization: str | None) -> ApiClient: ...
    async def issue(self, department: str, label: str, actor: Actor) -> dict[str, Any]: ...
    async def tokens(self, department: str) -> list[dict[str, Any]]: ...
    async def revoke(self, department: str, token_id: int, actor: Actor
                     ) -> dict[str, Any]: ...


class LoopReportsDesk(Protocol):
    """The case loop's reports (cases/loop/reports.py LoopReports)."""

    def period(self, kind: PeriodKind, day: date | None = None) -> Period: ...
    async def report(self, q: Query, *, as_of: datetime | None = None) -> Report: ...


class InsightDesk(Protocol):
    """Hot-topic alerts and suggested classification (agent_desk/insight/services.py
    Insight), as the console uses them. ``visible``: the asker's need-to-know (SQL)."""

    async def alerts(self, *, city: str | None, visible: Any, status: str = "open",
                     limit: int = 50) -> list[dict[str, Any]]: ...
    async def alert(self, alert_id: int, *, city: str | None, visible: Any
                    ) -> dict[str, Any]: ...
    async def acknowledge(self, alert_id: int, *, user: str, city: str | None
                          ) -> dict[str, Any]: ...
    async def merge(self, alert_id: int, actor: LoopActor, *, city: str | None,
                    visible: Any, into: str | None = None) -> dict[str, Any]: ...
    async def suggest(self, number: str, *, text: str = "", visible: Any, user: str
                      ) -> dict[str, Any]: ...
    async def classifier_report(self) -> dict[str, Any]: ...


class KnowledgeDesk(Protocol):
    """The knowledge base (agent_desk/knowledge/store.py KnowledgeBase): reads and changes
    within the asker's Scope (its role and city)."""

    async def search(self, text: str, scope: Scope, today: date, *, matter: str = "",
                     limit: int = 10) -> list[dict[str, Any]]: ...
    async def read(self, article_id: int, scope: Scope, today: date) -> dict[str, Any]: ...
    async def mark_helpful(self, article_id: int, scope: Scope, today: date
                           ) -> dict[str, Any]: ...
    async def listing(self, scope: Scope, *, status: str | None = None,
                      matter: str | None = None, city: str | None = None, limit: int = 50,
                      offset: int = 0) -> dict[str, Any]: ...
    async def versions(self, article_id: int, scope: Scope) -> list[dict[str, Any]]: ...
    async def create(self, fields: Mapping[str, Any], scope: Scope, actor: Actor
                     ) -> dict[str, Any]: ...
    async def update(self, article_id: int, fields: Mapping[str, Any], scope: Scope,
                     actor: Actor, *, revision: int | None = None) -> dict[str, Any]: ...
    async def act(self, article_id: int, action: str, scope: Scope, actor: Actor, *,
                  revision: int | None = None, note: str = "") -> dict[str, Any]: ...
    async def export_text(self, scope: Scope, actor: Actor, fmt: str) -> tuple[str, int]: ...
    async def import_text(self, text: str, fmt: str, scope: Scope, actor: Actor, *,
                          submit: bool = False) -> dict[str, int]: ...


class AgentFiguresView(Protocol):
    """Agent figures and the staffing forecast (agent_desk/figures/services.py
    AgentFiguresDesk)."""

    def period(self, kind: Any, day: date | None = None) -> Period: ...
    async def report(self, period: Period, by: Any, *, city: str | None, lang: str = ...,
                     until: datetime | None = None) -> dict[str, Any]: ...
    async def forecast(self, city: str, day: date) -> dict[str, Any]: ...


class QualityView(Protocol):
    """Quality inspection (agent_desk/quality/store.py QualityDesk)."""

    def today(self) -> date: ...
    def checklist(self) -> list[dict[str, Any]]: ...
    async def samples(self, day: date, *, city: str | None) -> list[dict[str, Any]]: ...
    async def sample(self, sample_id: int, *, city: str | None) -> dict[str, Any]: ...
    async def score(self, sample_id: int, items: dict[str, int], comment: str, who: Actor,
                    *, city: str | None) -> dict[str, Any]: ...
    async def mine(self, agent: str, *, limit: int = ...) -> list[dict[str, Any]]: ...


@dataclass
class ConsoleDeps:
    """``web`` is read on every request (a test may swap it for other settings)."""

    cfg: Config
    web: WebSection
    redis: Redis
    personal: PersonalData
    sessions: Sessions
    gate: SessionGate
    users: Users
    limiter: LoginLimiter
    audit: Audit
    cases: CaseDesk
    board: Board
    presence: Presence
    live: LiveState
    callcontrol: CallControl
    facts: CaseFacts
    repeat_callers: RepeatCallers
    skills: Skills
    ami_of: Callable[[str], Ami]
    exposition: Callable[[], Awaitable[bytes]]  # the Prometheus text (agent_desk/metrics.py)
    transcripts: Transcripts | None = None
    video: VideoDesk | None = None  # [sign_language] record_video
    surge: Surge | None = None
    loop: CaseLoopDesk | None = None
    webhooks: WebhookDesk | None = None
    intake: IntakeDesk | None = None
    followups: FollowUps | None = None
    departments: Departments | None = None
    tokens: ApiTokens | None = None
    reports: LoopReportsDesk | None = None
    insight: InsightDesk | None = None
    knowledge: KnowledgeDesk | None = None
    monitoring: Monitoring | None = None
    figures: AgentFiguresView | None = None
    quality: QualityView | None = None

    def current_call(self, agent: str) -> tuple[str, Mapping[str, Any]] | None:
        """The agent's latest live call on the wallboard (call id, call)."""
        calls = [(cid, c) for cid, c in self.board.calls.items() if c.get("agent") == agent]
        return calls[-1] if calls else None

    async def current_case(self, agent: str) -> Case | None:
        """The case of the agent's current call (the screen pop's case), if any."""
        cur = self.current_call(agent)
        if cur is None:
            return None
        call_id = cur[0]
        hot = await self.live.call(call_id)
        number = hot.get("case") or self.facts.cached_number(call_id)
        return await self.cases.case_by(number=number, call_id=call_id)

    async def scope(self, sess: Session) -> Scope:
        """What this user may see now (need-to-know, agent_desk/access.py): their city from
        the users table (not the cookie), and for an agent their current call."""
        user = await self.users.get(sess.uid)
        if user is None or user.disabled or user.username != sess.user:
            return Scope.nobody(sess.user)
        agent = user.agent_id if user.role == "agent" else None
        city = user.city
        if user.role == "department":
            return Scope(sess.user, user.role, None, department=user.department_id)
        if city is None and agent:
            try:
                city = self.cfg.agent(agent).city
            except KeyError:
                return Scope.nobody(sess.user)
        current = None
        if agent:
            # What the agent's latest call told the case store is on its case first: the
            # wallboard drops an ended call at once, and "their own case" is then read from
            # the case's agent.
            await self.facts.written_for_agent(agent)
            case = await self.current_case(agent)
            if case is not None:
                current = CurrentCall(case.id, case.city, case.caller_hash)
        return Scope(sess.user, user.role, None if city in (None, PROVINCE) else city,
                     agent=agent, current=current)

    async def case_fact(self, number: str, kind: str, data: dict[str, Any], *,
                        case: Case | None = None) -> None:
        """A console fact on the case's call timeline (closing, callbacks)."""
        case = case or await self.cases.case_by(number=number)
        if case is not None and case.call_id:
            await self.facts.apply(CallFact(kind, case.call_id, case.node or "", time.time(),
                                            data, source="console"))
