"""The console's phone in the browser (WebRTC, docs/webrtc.md): its SIP credentials, issued
to the signed-in agent only.

The page asks for them after sign-in and keeps them in memory only (a reload asks again).
They are the agent's own endpoint's credentials, derived on the service from the master
SIP secret, which never leaves the service; no request names an agent: a user gets the
credentials of the agent its account is linked to, and nobody else's. Asterisk checks them
at REGISTER (digest, per endpoint), so a page cannot register as another agent."""

from __future__ import annotations

import logging

from aiohttp import web

from agent_desk.softphone.credentials import issue_credentials
from agent_desk.softphone.schemas import CREDENTIALS
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import Route, actor, agent_of
from common.errors import DomainError

log = logging.getLogger(__name__)

ROUTES = [
    Route("GET", "/api/phone/credentials", "phone_credentials", ("agent",),
          "The signed-in agent's own SIP credentials and WebSocket address for the console's "
          "phone (agents whose phone is the browser)", answer=CREDENTIALS),
]


class PhoneHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_phone_credentials(self, request: web.Request, sess: Session, body: None
                                  ) -> web.StreamResponse:
        cfg = self.deps.cfg
        agent_id = agent_of(sess)
        try:
            agent = cfg.agent(agent_id)
        except KeyError:
            raise DomainError("unknown_agent", f"agent {agent_id} is not in the "
                                               "configuration") from None
        if agent.phone != "browser":
            raise DomainError("no_browser_phone", f"agent {agent_id} answers on a SIP phone "
                                                  "(phone = \"sip\" in the configuration)")
        node = cfg.city(agent.city).node
        creds = issue_credentials(cfg, agent_id)
        url = cfg.webrtc_url(node, request.host)
        host = url.split("/", 3)[2].rsplit(":", 1)[0]
        await self.deps.audit.record(actor(sess, request), "phone.credentials", None,
                                     {"agent": agent_id, "node": node})
        log.info("phone credentials issued", extra={"agent": agent_id, "node": node})
        return web.json_response({
            "agent": agent_id, "display_name": agent.name, "uri": f"sip:{agent_id}@{host}",
            "username": agent_id, "password": creds.password, "ws_url": url,
            "ice_servers": list(cfg.webrtc.ice_servers), "ring_sound": cfg.webrtc.ring_sound,
            # Video calls (the sign-language seat's) recorded by the page and uploaded.
            "record_video": self.deps.video is not None})
