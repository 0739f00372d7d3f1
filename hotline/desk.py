"""The agent desk's web collaborators, taken from the running service (the composition
root's wiring of agent_desk/web: the features get these, never the service)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_desk import metrics
from agent_desk.audit import Audit
from agent_desk.cases.store import ConsoleStore
from agent_desk.supervision.wallboard import Wallboard
from agent_desk.web.auth import LoginLimiter, SessionGate, Sessions, Users
from agent_desk.web.deps import ConsoleDeps

if TYPE_CHECKING:
    from hotline.service import HotlineService


def console_deps(service: HotlineService) -> ConsoleDeps:
    cfg, web = service.cfg, service.cfg.web
    if service.redis is None:
        raise RuntimeError("the console needs Redis: start the service first")
    prefix = cfg.redis.prefix
    sm = service.store.sessions
    sessions = Sessions(cfg.session_secret, web.session_ttl_s)
    board = Wallboard(cfg, service.redis, prefix, sm, service_level_s=web.service_level_s)

    async def exposition() -> str:
        return await metrics.exposition(service, board)

    return ConsoleDeps(
        cfg=cfg, web=web, redis=service.redis, personal=service.personal,
        sessions=sessions, gate=SessionGate(sessions, service.redis, prefix),
        users=Users(sm),
        limiter=LoginLimiter(service.redis, prefix, web.login_attempts, web.login_window_s,
                             web.login_attempts_per_address),
        audit=Audit(sm), cases=ConsoleStore(sm, service.personal, cfg.service.timezone),
        board=board, presence=service.presence, live=service.live,
        callcontrol=service.callcontrol, facts=service.store, repeat_callers=service.lookups,
        skills=service.skills, ami_of=lambda node: service.nodes[node].ami,
        exposition=exposition, transcripts=service.transcripts, surge=service.surge)
