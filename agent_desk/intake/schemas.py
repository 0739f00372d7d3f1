"""The intake's request bodies and answers. The public form's and the channels' bodies say
what is wrong in Chinese first (the citizen reads it), naming the field, then in English."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, StrictStr, ValidationError, field_validator

from agent_desk.intake.models import API_CHANNELS
from agent_desk.intake.public import PUBLIC_STATES
from agent_desk.web.routes import ARR, SN, B, Body, I, S, obj, ok_and, ref

AppealType = Literal["consultation", "help", "complaint", "report", "suggestion", "praise"]
Channel = Literal["wechat", "miniprogram", "app", "partner", "email"]
assert set(get_args(Channel)) == set(API_CHANNELS)

# What a person writes between digit groups; the number itself is checked against
# [callbacks] allowed_patterns (common/numbers.py) by the handler.
PHONE = Annotated[StrictStr, Field(min_length=3, max_length=24, pattern=r"^[0-9+\- ()]+$")]
NAME = Annotated[StrictStr, Field(max_length=32)]
CITY = Annotated[StrictStr, Field(min_length=1, max_length=32)]
SUBJECT = Annotated[StrictStr, Field(min_length=1, max_length=128)]
ADDRESS = Annotated[StrictStr, Field(max_length=256)]
CONTENT_MAX = 4000
CONTENT = Annotated[StrictStr, Field(min_length=1, max_length=CONTENT_MAX)]
MATTER = Annotated[StrictStr, Field(min_length=1, max_length=128)]
CASE_NUMBER = Annotated[StrictStr, Field(min_length=1, max_length=32,
                                         pattern=r"^[0-9A-Za-z-]+$")]
# The public form's body limit (bytes): the longest content, escaped, and the rest.
MAX_BODY = 32 * 1024

LABELS = {"name": "姓名", "phone": "联系电话", "caller": "联系电话", "city": "所在城市",
          "appeal_type": "诉求类型", "matter": "事项", "subject": "标题", "address": "地址",
          "content": "诉求内容", "consent": "同意声明", "website": "网址", "number": "工单号",
          "code": "查询码", "external_ref": "外部编号", "channel": "渠道",
          "body": "提交内容"}


def _reason(e: Any) -> str:
    kind, ctx = e["type"], e.get("ctx") or {}
    if kind == "missing":
        return "必须填写（required）"
    if kind == "string_too_long":
        return f"不能超过 {ctx.get('max_length')} 个字（at most {ctx.get('max_length')})"
    if kind == "string_too_short":
        return "不能为空（must not be empty）"
    if kind == "string_pattern_mismatch":
        return "格式不正确（not in the expected form）"
    if kind == "literal_error" and e["loc"][:1] == ("consent",):
        return "请阅读并同意个人信息使用说明（consent is required）"
    if kind == "literal_error":
        return f"不是可选的值（one of {ctx.get('expected')}）"
    if kind == "extra_forbidden":
        return "不是表单中的项目（unknown field）"
    if kind == "value_error":
        return str(ctx.get("error", e["msg"]))
    return f"类型不正确（{e['msg']}）"


class PublicBody(Body):
    @classmethod
    def problems(cls, exc: ValidationError) -> str:
        out = []
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "body"
            label = LABELS.get(str(e["loc"][0]) if e["loc"] else "body", field)
            out.append(f"{label}（{field}）：{_reason(e)}")
        return "；".join(out)

    @field_validator("subject", "content", check_fields=False)
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("不能为空（must not be empty）")
        return v.strip()


class WebCaseBody(PublicBody):
    """The public form (市长信箱)."""

    name: NAME = ""
    phone: PHONE
    city: CITY
    appeal_type: AppealType | None = None
    matter: MATTER | None = None
    subject: SUBJECT
    address: ADDRESS = ""
    content: CONTENT
    # The citizen ticked "I agree" under the personal-data notice.
    consent: Literal[True]
    # Hidden from people (a honeypot): a program filling every field fills it too.
    website: Annotated[StrictStr, Field(max_length=256)] = ""


class StatusBody(PublicBody):
    """A status query: the case number and the phone number given, or the query code."""

    number: CASE_NUMBER
    phone: PHONE | None = None
    code: Annotated[StrictStr, Field(min_length=4, max_length=16,
                                     pattern=r"^[0-9A-Za-z -]+$")] | None = None


class ChannelCaseBody(PublicBody):
    """A case from a channel's system (WeChat, mini-program, app, partner hotline, e-mail)."""

    caller: PHONE
    name: NAME = ""
    city: CITY
    subject: SUBJECT
    address: ADDRESS = ""
    content: CONTENT
    # What the channel's own staff or form chose; the hotline classifies.
    appeal_type: AppealType | None = None
    matter: MATTER | None = None
    # The channel's id of the matter, given back when it polls.
    external_ref: Annotated[StrictStr, Field(min_length=1, max_length=64,
                                             pattern=r"^[A-Za-z0-9._:/-]+$")] | None = None


class TokenBody(Body):
    channel: Channel
    name: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class NoBody(Body):
    pass


def wait_words(seconds: int) -> str:
    """"3 分钟" / "45 秒": how long until the limit has room again."""
    if seconds >= 90:
        return f"{math.ceil(seconds / 60)} 分钟"
    return f"{max(1, seconds)} 秒"


STATUS = {"enum": list(PUBLIC_STATES)}
SCHEMAS: dict[str, dict[str, Any]] = {
    "IntakeStatus": obj({
        "number": S, "status": STATUS, "channel": S, "accepted_at": SN,
        "appeal_type_name": S, "matter_name": S, "department_name": S, "reply": SN,
        "replied_at": SN, "closed_at": SN}),
    "IntakeToken": obj({"id": I, "channel": S, "name": S, "hint": S, "created_at": SN,
                        "created_by": S, "revoked_at": SN, "last_used_at": SN}),
}
OPTIONS = obj({
    "cities": {"type": "array", "items": obj({"id": S, "name": S})},
    "appeal_types": {"type": "array", "items": obj({"code": S, "name": S})},
    "matters": ARR, "consent_version": S, "content_max": I})
SUBMITTED = ok_and(number=S, query_code=S, accepted_at=SN, status=STATUS)
PUBLIC = ref("IntakeStatus")
CHANNEL_CREATED = ok_and(number=S, accepted_at=SN, status=STATUS, replayed=B,
                         external_ref=SN)
CHANNEL_VIEW = {"allOf": [ref("IntakeStatus"), obj({"external_ref": SN})]}
TOKEN = ref("IntakeToken")
TOKENS = obj({"tokens": {"type": "array", "items": ref("IntakeToken")}})
TOKEN_ISSUED = {"allOf": [ref("IntakeToken"), obj({"token": S})]}
CASE_INTAKE = obj({"number": S, "channel": S, "name": S, "external_ref": SN,
                   "appeal_type_hint": SN, "matter_hint": SN, "consent_at": SN,
                   "consent_version": SN, "created_at": SN})
ERROR = {"content": {"application/json": {"schema": ref("Error")}}}
TOO_MANY = {"description": "too many requests (per address, number, case or token)", **ERROR,
            "headers": {"Retry-After": {"required": True, "schema": {
                "type": "integer", "minimum": 1}}}}
BUSY = {"description": "the rate limits cannot be counted (Redis): refused", **ERROR}
MORE = {"429": TOO_MANY, "503": BUSY}
IDEMPOTENCY = {"Idempotency-Key": {
    "type": "string", "minLength": 8, "maxLength": 128, "pattern": r"^[A-Za-z0-9._:-]+$",
    "description": "the channel's key for this case: the same key again answers the same "
                   "case (never a second one)"}}
