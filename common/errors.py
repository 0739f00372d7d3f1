"""The one refusal every feature raises: ``DomainError(code, message)``.

``code`` is a stable word a program can act on (the web answers it as ``error`` with the HTTP
status of one table, agent_desk/web/middleware.py); ``message`` is worded for the person who
asked. Features may subclass it to name their refusals; they add no fields.
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
