"""Webhooks for the admin: answer schemas and query parameters."""

from __future__ import annotations

from typing import Any

from agent_desk.web.routes import SN, B, I, S, obj, ok_and, ref

STATES = ["pending", "delivered", "dead"]
NI: dict[str, Any] = {"type": ["integer", "null"]}

SCHEMAS: dict[str, dict[str, Any]] = {
    "WebhookDelivery": obj({
        "id": I, "idempotency_key": S, "department": S, "department_name": S, "event": S,
        "case": SN, "state": {"enum": STATES}, "attempts": I, "next_attempt_at": SN,
        "last_status": NI, "last_error": SN, "created_at": SN, "delivered_at": SN}),
    "WebhookDepartment": obj({
        "id": S, "name": S, "webhook_url": SN, "active": B, "generation": I, "revealed": B,
        "rotated_at": SN, "pending": I, "dead": I}),
    "WebhookSecret": obj({"department": S, "generation": I, "secret": S}),
}
DELIVERIES = obj({"deliveries": {"type": "array", "items": ref("WebhookDelivery")}})
DELIVERY = ok_and(delivery=ref("WebhookDelivery"))
DEPARTMENTS = obj({"departments": {"type": "array", "items": ref("WebhookDepartment")}})
SECRET = ref("WebhookSecret")
QUERY: dict[str, dict[str, Any]] = {
    "state": {"enum": STATES},
    "department": {"type": "string", "maxLength": 32},
    "limit": {"type": "integer", "minimum": 1, "maximum": 500},
}
