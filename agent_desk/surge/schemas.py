"""Surge handling (lending agents between cities): request bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr

from agent_desk.web.routes import ARR, Body, obj


class SurgeProposalBody(Body):
    target: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class SurgeApplyBody(Body):
    proposal_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class SurgeReturnBody(Body):
    agent_ids: Annotated[list[Annotated[StrictStr, Field(pattern=r"^[0-9]{3,8}$")]],
                         Field(min_length=1, max_length=200)]


SCHEMAS: dict[str, dict[str, Any]] = {}
MOVES = obj({"moves": ARR})
QUERY: dict[str, dict[str, Any]] = {"limit": {"type": "integer", "minimum": 1, "maximum": 1000}}
