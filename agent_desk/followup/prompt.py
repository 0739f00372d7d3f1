"""The words of a 回访 call's first prompt: the case's number read digit by digit (as on the
phone: 1 is 幺, 0 is 零) and the 事项's name."""

from __future__ import annotations

DIGITS = dict(zip("0123456789", "零幺二三四五六七八九", strict=True))


def spoken_digits(number: str) -> str:
    return "".join(DIGITS.get(ch, "") for ch in number)


def intro_text(template: str, number: str, matter: str | None) -> str:
    """``[follow_up] intro`` with the case's number and 事项 (the last name of its path)."""
    name = (matter or "").split(" › ")[-1].strip() or "您反映的问题"
    return template.replace("{number}", spoken_digits(number)).replace("{matter}", name)
