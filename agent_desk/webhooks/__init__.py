"""Outbound signed webhooks to departments' own systems (docs/webhooks.md)."""
