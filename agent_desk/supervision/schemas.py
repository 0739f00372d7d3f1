"""Supervisors: the wallboard, agents, pausing and skills (request bodies, answer schemas)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt

from agent_desk.web.routes import OBJ, SN, B, Body, I, S, obj, ok_and


class AgentPauseBody(Body):
    paused: StrictBool
    reason: Literal["rest", "training", "after_call_work", "meeting", "supervisor"] = \
        "supervisor"


class SkillsBody(Body):
    skills: dict[Annotated[str, Field(max_length=32)], StrictInt]


MonitoringMode = Literal["listen", "whisper", "barge"]


class MonitorBody(Body):
    """监听、耳语、强插: which agent's call, in which mode."""

    agent: Annotated[str, Field(pattern=r"^[0-9]{3,8}$")]
    mode: MonitoringMode = "listen"


class MonitorModeBody(Body):
    mode: MonitoringMode


SCHEMAS: dict[str, dict[str, Any]] = {}
WALLBOARD = obj({"type": {"const": "snapshot"}, "seq": I})
AGENTS = obj({"agents": {"type": "array", "items": obj({"agent": S})}, "skills": OBJ})
AGENT_PAUSE = ok_and(agent=S, paused=B)
AGENT_SKILLS = ok_and(agent=S, before=OBJ, after=OBJ)
SATISFACTION = obj({"day": S, "cities": OBJ, "queues": OBJ})
MONITOR_SESSION = obj({"session_id": S, "agent": S, "mode": S, "state": S, "phone": S})
MONITORING = obj({"sessions": {"type": "array", "items": MONITOR_SESSION}, "phone": SN,
                  "agent_sees": B})
MONITOR = ok_and(session=MONITOR_SESSION)
