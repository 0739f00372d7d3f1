"""The agent desk's web collaborators, taken from the running service (the composition
root's wiring of agent_desk/web: the features get these, never the service)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aiohttp import web

from agent_desk import metrics
from agent_desk.audit import Audit
from agent_desk.callbacks import http as callbacks_http
from agent_desk.callbacks import schemas as callbacks_schemas
from agent_desk.cases import http as cases_http
from agent_desk.cases import schemas as cases_schemas
from agent_desk.cases.store import ConsoleStore
from agent_desk.console import http as console_http
from agent_desk.departments import http as departments_http
from agent_desk.departments import schemas as departments_schemas
from agent_desk.departments.services import DepartmentDesk
from agent_desk.departments.tokens import DepartmentTokens
from agent_desk.figures import http as figures_http
from agent_desk.figures.services import AgentFiguresDesk
from agent_desk.figures.store import FiguresStore
from agent_desk.followup import http as followup_http
from agent_desk.followup import schemas as followup_schemas
from agent_desk.insight import http as insight_http
from agent_desk.insight import schemas as insight_schemas
from agent_desk.intake import http as intake_http
from agent_desk.intake import schemas as intake_schemas
from agent_desk.intake.store import IntakeStore
from agent_desk.knowledge import http as knowledge_http
from agent_desk.knowledge import schemas as knowledge_schemas
from agent_desk.knowledge.store import KnowledgeBase
from agent_desk.loop import http as loop_http
from agent_desk.loop import schemas as loop_schemas
from agent_desk.quality import http as quality_http
from agent_desk.quality.store import QualityDesk
from agent_desk.reports import http as reports_http
from agent_desk.reports import schemas as reports_schemas
from agent_desk.signlang import http as signlang_http
from agent_desk.signlang import schemas as signlang_schemas
from agent_desk.softphone import http as phone_http
from agent_desk.softphone import schemas as phone_schemas
from agent_desk.supervision import http as supervision_http
from agent_desk.supervision.feed import Feed
from agent_desk.supervision.wallboard import Wallboard
from agent_desk.surge import http as surge_http
from agent_desk.transfers import http as transfers_http
from agent_desk.users import http as users_http
from agent_desk.users import schemas as users_schemas
from agent_desk.web.app import Feature, build_app
from agent_desk.web.auth import SessionGate, Sessions, Users, UserStates
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.login_limits import LoginLimiter
from agent_desk.webhooks import http as webhooks_http
from agent_desk.webhooks import schemas as webhooks_schemas
from asr.video import VideoRecordings
from cases.loop.taxonomy import Taxonomy

if TYPE_CHECKING:
    from hotline.service import HotlineService

log = logging.getLogger(__name__)

# The rooms that make up the console's API, in the order the description lists them.
FEATURES: tuple[Feature, ...] = (
    Feature(users_http.ROUTES, users_http.UsersHttp, users_schemas.SCHEMAS),
    Feature(console_http.ROUTES, console_http.ConsoleHttp),
    Feature(phone_http.ROUTES, phone_http.PhoneHttp, phone_schemas.SCHEMAS),
    Feature(signlang_http.ROUTES, signlang_http.SignLanguageHttp, signlang_schemas.SCHEMAS,
            public_pages=("sign",)),
    Feature(transfers_http.ROUTES, transfers_http.TransfersHttp),
    Feature(cases_http.ROUTES, cases_http.CasesHttp, cases_schemas.SCHEMAS),
    Feature(callbacks_http.ROUTES, callbacks_http.CallbacksHttp, callbacks_schemas.SCHEMAS),
    Feature(supervision_http.ROUTES, supervision_http.SupervisionHttp),
    Feature(followup_http.ROUTES, followup_http.FollowUpsHttp, followup_schemas.SCHEMAS),
    Feature(surge_http.ROUTES, surge_http.SurgeHttp),
    Feature(webhooks_http.ROUTES, webhooks_http.WebhooksHttp, webhooks_schemas.SCHEMAS),
    Feature(loop_http.ROUTES, loop_http.LoopHttp, loop_schemas.SCHEMAS),
    Feature(intake_http.ROUTES, intake_http.IntakeHttp, intake_schemas.SCHEMAS,
            public_pages=("intake",)),
    Feature(departments_http.ROUTES, departments_http.DepartmentsHttp,
            departments_schemas.SCHEMAS),
    Feature(reports_http.ROUTES, reports_http.ReportsHttp, reports_schemas.SCHEMAS),
    Feature(insight_http.ROUTES, insight_http.InsightHttp, insight_schemas.SCHEMAS),
    Feature(knowledge_http.ROUTES, knowledge_http.KnowledgeHttp, knowledge_schemas.SCHEMAS),
    Feature(figures_http.ROUTES, figures_http.FiguresHttp),
    Feature(quality_http.ROUTES, quality_http.QualityHttp),
)
ROUTES = [r for f in FEATURES for r in f.routes]


async def start_web(service: HotlineService, host: str | None = None, port: int | None = None
                    ) -> tuple[web.AppRunner, ConsoleDeps]:
    """The agent console and wallboard on [web] host:port (``hotline serve`` unless
    --no-web); returns the aiohttp runner (``await runner.cleanup()`` stops it) and the
    console's collaborators."""
    app, deps = console_app(service)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host = host or service.cfg.web.host
    port = service.cfg.web.port if port is None else port
    await web.TCPSite(runner, host, port).start()
    log.info("console listening", extra={"host": host, "port": port})
    return runner, deps


def console_app(service: HotlineService) -> tuple[web.Application, ConsoleDeps]:
    """The console's web app over the running service's collaborators."""
    deps, board = console_deps(service)
    feed = Feed(deps.gate, board, lambda: deps.web.max_sockets_per_user)
    app, deps = build_app(deps, FEATURES, {"/api/ws": feed.h_ws})

    async def start_feed(_app: web.Application) -> None:
        await feed.start()

    async def stop_feed(_app: web.Application) -> None:
        await feed.stop()

    app.on_startup.append(start_feed)
    app.on_shutdown.append(stop_feed)
    return app, deps


def console_deps(service: HotlineService) -> tuple[ConsoleDeps, Wallboard]:
    cfg, web = service.cfg, service.cfg.web
    if service.redis is None:
        raise RuntimeError("the console needs Redis: start the service first")
    prefix = cfg.redis.prefix
    sm = service.store.sessions
    sessions = Sessions(cfg.session_secret, web.session_ttl_s)
    board = Wallboard(cfg, service.redis, prefix, sm, service_level_s=web.service_level_s)
    states = UserStates(service.redis, prefix)
    users = Users(sm, states)

    # The service's figures, read at scrape time, on its registry beside the timings.
    figures = metrics.ServiceFigures(service, board)
    service.metrics.attach("service", figures)

    async def exposition() -> bytes:
        return await metrics.exposition(service.metrics.registry, figures)

    audit = Audit(sm)
    deps = ConsoleDeps(
        cfg=cfg, web=web, redis=service.redis, personal=service.personal,
        sessions=sessions,
        gate=SessionGate(sessions, states, users, idle_timeout_s=web.idle_timeout_s),
        users=users,
        limiter=LoginLimiter(service.redis, prefix, web.login_attempts, web.login_window_s,
                             web.login_attempts_per_address),
        audit=audit, cases=ConsoleStore(sm, service.personal, cfg.service.timezone),
        board=board, presence=service.presence, live=service.live,
        callcontrol=service.callcontrol, facts=service.store, repeat_callers=service.lookups,
        skills=service.skills, ami_of=lambda node: service.nodes[node].ami,
        exposition=exposition, transcripts=service.transcripts, surge=service.surge,
        video=VideoRecordings(sm, service.personal, service.transcripts.dir,
                              cfg.sign_language.skill)
        if cfg.sign_language.enabled and cfg.sign_language.record_video else None,
        loop=service.case_loop, webhooks=service.webhooks.admin,
        intake=IntakeStore(sm, service.personal, service.case_loop),
        followups=service.followups,
        departments=DepartmentDesk(sm, service.personal, service.case_loop, audit,
                                   {c.id: c.name for c in cfg.cities},
                                   yellow_share=cfg.case_loop.yellow_share),
        tokens=DepartmentTokens(sm, service.redis, prefix,
                                lambda: deps.web.token_requests_per_minute),
        reports=service.loop_reports, insight=service.insight, monitoring=service.monitoring,
        knowledge=KnowledgeBase(sm, cities=[c.id for c in cfg.cities],
                                matter_names=matter_names(service.case_loop.taxonomy)),
        figures=AgentFiguresDesk(cfg, FiguresStore(sm), service.staffing),
        quality=QualityDesk(sm, cfg.quality, ZoneInfo(cfg.service.timezone),
                            {a.id: a.name for a in cfg.agents},
                            {c.id: c.name for c in cfg.cities}))
    return deps, board


def matter_names(taxonomy: Taxonomy) -> Callable[[str], str | None]:
    """The knowledge base shows a 事项 by the case loop's taxonomy's name for it."""

    def name(code: str) -> str | None:
        matter = taxonomy.matters.get(code)
        return matter.name if matter is not None else None

    return name
