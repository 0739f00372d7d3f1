"""Cases without a call: the public form (市长信箱) and its status page, the channels' API,
the admins' token management, and how a case arrived for the console (thin handlers over
agent_desk/intake/store.py).

The public routes need no session. What holds them back: the anonymous request limit of the
web kit, then the intake's own counters in Redis ([intake]: submissions per address and per
phone number, queries per address, wrong answers per case and per phone number or code), a
small body limit, a honeypot field, and answers that never tell whether a case exists. Their
refusals say what is wrong in Chinese first, naming the field. Nothing personal is logged.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aiohttp import web

from agent_desk.audit import Actor
from agent_desk.intake.limits import Limit, Quotas
from agent_desk.intake.public import client_bucket, normalize_code, request_hash
from agent_desk.intake.schemas import (
    CASE_INTAKE,
    CHANNEL_CREATED,
    CHANNEL_VIEW,
    CONTENT_MAX,
    IDEMPOTENCY,
    LABELS,
    MAX_BODY,
    MORE,
    OPTIONS,
    PUBLIC,
    SUBMITTED,
    TOKEN,
    TOKEN_ISSUED,
    TOKENS,
    ChannelCaseBody,
    StatusBody,
    TokenBody,
    WebCaseBody,
    wait_words,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, IntakeDesk
from agent_desk.web.middleware import RateLimited
from agent_desk.web.routes import ALL, Route, actor
from common.errors import DomainError
from common.numbers import callback_number

log = logging.getLogger(__name__)

ROUTES = [
    Route("GET", "/api/intake/options", "intake_options", (),
          "The public form's choices: cities, 诉求类型, 事项 (no sign-in)", answer=OPTIONS,
          more=MORE),
    Route("POST", "/api/intake/web", "intake_web", (),
          "Submit a case from the public web form (市长信箱; no sign-in): answers the case "
          "number and a query code. Limited per client address and per phone number",
          WebCaseBody, answer=SUBMITTED, more=MORE, max_body=MAX_BODY),
    Route("POST", "/api/intake/status", "intake_status", (),
          "A case's public state and, once reviewed, its reply: the case number with the "
          "phone number given or the query code (no sign-in; limited, no enumeration)",
          StatusBody, answer=PUBLIC, more=MORE, max_body=4096),
    Route("POST", "/api/intake/cases", "intake_channel_case", (),
          "A case from a channel's system (WeChat, mini-program, app, partner, e-mail): "
          "API token; the same Idempotency-Key answers the same case",
          ChannelCaseBody, answer=CHANNEL_CREATED, more=MORE, max_body=MAX_BODY,
          headers=IDEMPOTENCY, bearer=True),
    Route("GET", "/api/intake/cases/{number}", "intake_channel_status", (),
          "The public state and reviewed reply of a case this channel sent (API token)",
          answer=CHANNEL_VIEW, more=MORE, bearer=True),
    Route("GET", "/api/intake/tokens", "intake_tokens", ("admin",),
          "The channels' API tokens (never the tokens themselves)", answer=TOKENS),
    Route("POST", "/api/intake/tokens", "intake_token_issue", ("admin",),
          "Issue an API token for a channel (shown in this answer only)", TokenBody,
          answer=TOKEN_ISSUED),
    Route("POST", "/api/intake/tokens/{id}/revoke", "intake_token_revoke", ("admin",),
          "Revoke a channel's API token (its requests are refused at once)", answer=TOKEN),
    Route("GET", "/api/cases/{number}/intake", "case_intake", ALL,
          "How a case received without a call arrived: channel, the citizen's name, the "
          "channel's reference, the suggested classification, the consent", answer=CASE_INTAKE),
]

NOT_OPEN = "网上受理暂未开放，请拨打 12345（not open: call 12345）"
NOT_FOUND = ("未找到该工单，或联系电话/查询码与工单不符（no such case, or the phone number or "
             "query code does not match it）")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class IntakeHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps
        self.quotas = Quotas(deps.redis, deps.cfg.redis.prefix)

    def _intake(self, *, web_form: bool = False, channel_api: bool = False) -> IntakeDesk:
        section = self.deps.cfg.intake
        if self.deps.intake is None or (web_form and not section.web_form) or (
                channel_api and not section.channel_api):
            raise DomainError("not_available", NOT_OPEN)
        return self.deps.intake

    # -- checks the schema cannot make (they depend on the configuration) -------------------

    def _number(self, raw: str, field: str) -> str:
        cfg = self.deps.cfg
        try:
            return callback_number(raw, cfg.callbacks.allowed_patterns,
                                   refused=[e.number for e in cfg.emergency_lines])
        except DomainError:
            raise DomainError("invalid", f"{LABELS[field]}（{field}）：请填写正确的手机号码或带"
                                         f"区号的固定电话（a Chinese mobile or landline "
                                         f"number）") from None

    def _classes(self, intake: IntakeDesk, city: str, appeal_type: str | None,
                 matter: str | None) -> None:
        if city not in {c.id for c in self.deps.cfg.cities}:
            raise DomainError("invalid", "所在城市（city）：请从列表中选择城市（unknown city）")
        tax = intake.taxonomy
        if appeal_type is not None and appeal_type not in tax.appeal_types:
            raise DomainError("invalid", "诉求类型（appeal_type）：不是可选的类型（unknown）")
        if matter is not None:
            m = tax.matters.get(matter)
            if m is None or not m.leaf:
                raise DomainError("invalid", "事项（matter）：请从列表中选择具体事项（unknown "
                                             "matter, or a group rather than an item）")

    # -- the public form --------------------------------------------------------------------

    async def h_intake_options(self, request: web.Request, sess: None, body: None
                               ) -> web.StreamResponse:
        intake = self._intake(web_form=True)
        tax = intake.taxonomy
        return web.json_response({
            "cities": [{"id": c.id, "name": c.name} for c in self.deps.cfg.cities],
            "appeal_types": [{"code": k, "name": v} for k, v in tax.appeal_types.items()],
            "matters": tax.tree(), "consent_version": self.deps.cfg.intake.consent_version,
            "content_max": CONTENT_MAX})

    async def h_intake_web(self, request: web.Request, sess: None, body: WebCaseBody
                           ) -> web.StreamResponse:
        intake = self._intake(web_form=True)
        if body.website.strip():
            log.info("intake: honeypot field filled", extra={"channel": "web"})
            raise DomainError("invalid", "提交未通过校验，请刷新页面后重新填写（the submission "
                                         "looks automated）")
        number = self._number(body.phone, "phone")
        self._classes(intake, body.city, body.appeal_type, body.matter)
        s = self.deps.cfg.intake
        by_address = Limit(f"web:a:{client_bucket(request.remote)}",
                           s.submissions_per_address, s.submission_window_s)
        by_number = Limit(f"web:n:{self.deps.personal.lookup_hash(number)}",
                          s.submissions_per_number, s.submission_window_s)
        wait, full = await self.quotas.take(by_address, by_number)
        if wait:
            who = "该号码" if full is by_number else "您所在的网络"
            whom = "this phone number" if full is by_number else "this address"
            raise RateLimited(wait, f"提交过于频繁：{who}已达到提交次数上限，请 {wait_words(wait)}"
                                    f"后再试，紧急事项请拨打 12345（too many submissions from "
                                    f"{whom}）")
        out = await intake.submit(
            channel="web", city=body.city, caller=number, name=body.name,
            subject=body.subject, address=body.address.strip(), content=body.content,
            appeal_type=body.appeal_type, matter=body.matter,
            actor=Actor("web", "citizen"), consent_version=s.consent_version)
        return web.json_response({"ok": True, "number": out["number"],
                                  "query_code": out["query_code"],
                                  "accepted_at": out["accepted_at"], "status": out["status"]})

    async def h_intake_status(self, request: web.Request, sess: None, body: StatusBody
                              ) -> web.StreamResponse:
        intake = self._intake(web_form=True)
        if (body.phone is None) == (body.code is None):
            raise DomainError("invalid", "联系电话（phone）或查询码（code）：请填写其中一项（give "
                                         "the phone number or the query code）")
        s = self.deps.cfg.intake
        credential = (self.deps.personal.lookup_hash(body.phone) if body.phone is not None
                      else _sha(normalize_code(body.code or "")))
        by_address = Limit(f"q:a:{client_bucket(request.remote)}", s.queries_per_address,
                           s.query_window_s)
        # Wrong answers, counted before the comparison and given back after a right one:
        # concurrent guesses cannot all be checked.
        on_case = Limit(f"q:c:{_sha(body.number)}", s.query_failures_per_case,
                        s.query_window_s)
        on_credential = Limit(f"q:k:{credential}", s.query_failures_per_case,
                              s.query_window_s)
        wait, full = await self.quotas.take(by_address, on_case, on_credential)
        if wait:
            raise RateLimited(wait, (
                f"查询过于频繁，请 {wait_words(wait)}后再试（too many queries from this address）"
                if full is by_address else
                f"查询信息多次不符，已暂停查询，请 {wait_words(wait)}后再试或拨打 12345 咨询（too "
                f"many wrong answers for this case or number）"))
        view = await intake.status(body.number, phone=body.phone, code=body.code)
        if view is None:
            raise DomainError("not_found", NOT_FOUND)
        await self.quotas.give_back(on_case)
        await self.quotas.give_back(on_credential)
        return web.json_response(view)

    # -- the channels -----------------------------------------------------------------------

    async def _channel(self, request: web.Request, intake: IntakeDesk) -> tuple[int, str]:
        token_id, channel = await intake.check_token(request.headers.get("Authorization"))
        per_minute = self.deps.cfg.intake.channel_requests_per_minute
        wait, _ = await self.quotas.take(Limit(f"api:t:{token_id}", per_minute, 60))
        if wait:
            raise RateLimited(wait, f"请求过于频繁：每个令牌每分钟最多 {per_minute} 次（at most "
                                    f"{per_minute} requests a minute per token）")
        return token_id, channel

    async def h_intake_channel_case(self, request: web.Request, sess: None,
                                    body: ChannelCaseBody) -> web.StreamResponse:
        intake = self._intake(channel_api=True)
        token_id, channel = await self._channel(request, intake)
        number = self._number(body.caller, "caller")
        self._classes(intake, body.city, body.appeal_type, body.matter)
        out = await intake.submit(
            channel=channel, city=body.city, caller=number, name=body.name,
            subject=body.subject, address=body.address.strip(), content=body.content,
            appeal_type=body.appeal_type, matter=body.matter,
            actor=Actor(f"channel:{channel}:{token_id}", "channel", request.remote or ""),
            token_id=token_id, idempotency_key=request.headers["Idempotency-Key"].strip(),
            request_hash=request_hash(body.model_dump()), external_ref=body.external_ref)
        return web.json_response({"ok": True, **{k: out[k] for k in (
            "number", "accepted_at", "status", "replayed", "external_ref")}})

    async def h_intake_channel_status(self, request: web.Request, sess: None, body: None
                                      ) -> web.StreamResponse:
        intake = self._intake(channel_api=True)
        _, channel = await self._channel(request, intake)
        return web.json_response(await intake.channel_case(request.match_info["number"],
                                                           channel))

    # -- administration and the console -----------------------------------------------------

    async def h_intake_tokens(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        return web.json_response({"tokens": await self._intake().tokens()})

    async def h_intake_token_issue(self, request: web.Request, sess: Session, body: TokenBody
                                   ) -> web.StreamResponse:
        row, token = await self._intake().issue_token(body.channel, body.name,
                                                      actor(sess, request))
        log.info("channel token issued", extra={"token": row["id"], "channel": row["channel"],
                                                "by": sess.user})
        return web.json_response({**row, "token": token})

    async def h_intake_token_revoke(self, request: web.Request, sess: Session, body: None
                                    ) -> web.StreamResponse:
        try:
            token_id = int(request.match_info["id"])
        except ValueError:
            token_id = 0
        if not 0 < token_id < 2**31:
            raise DomainError("not_found", "no such token")
        row = await self._intake().revoke_token(token_id, actor(sess, request))
        log.info("channel token revoked", extra={"token": row["id"], "by": sess.user})
        return web.json_response(row)

    async def h_case_intake(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        d = self.deps
        out: dict[str, Any] = await self._intake().intake_of(
            request.match_info["number"], await d.scope(sess), actor(sess, request))
        return web.json_response(out)
