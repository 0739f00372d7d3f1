"""Which caller IDs a callback may dial: the rule lives in common/numbers.py, shared with the
rooms that take a citizen's number in writing (agent_desk/intake)."""

from common.numbers import callback_number

__all__ = ["callback_number"]
