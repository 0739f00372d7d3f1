"""The transfer panel: request body and answer schemas. The modes are call control's
(telephony/transfers/services.py ``CallControl.transfer(mode=...)``); ``leave`` and
``cancel`` act on the leg in progress."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr

from agent_desk.web.routes import OBJ, Body, S, obj, ok_and


class TransferBody(Body):
    action: Literal["consult", "three_way", "blind", "emergency", "leave", "cancel"]
    # A destination's id or number; three_way without one joins the answered destination.
    destination: Annotated[StrictStr, Field(max_length=32)] | None = None


SCHEMAS: dict[str, dict[str, Any]] = {}
TRANSFER = ok_and(leg=OBJ)
DESTINATIONS = obj({"destinations": {"type": "array", "items": obj({
    "id": S, "name": S, "number": S, "kind": S, "category": S})}})
