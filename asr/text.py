"""Natural Chinese text from Vosk's output.

Vosk's Chinese models put a space between every word ("我 想 咨询 一下 社保卡"). Written
Chinese has none between Han characters; a space stays around Latin words and numbers
("打开 App 查看", "iPhone 15 的屏幕") and goes next to CJK punctuation ("你好，谢谢。").
"""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")


def _is_han(ch: str) -> bool:
    """Han characters (and kana): no space between two of them. Korean keeps its spaces."""
    cp = ord(ch)
    return (
        0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3134F or 0x3040 <= cp <= 0x30FF
    )


def _is_cjk_punct(ch: str) -> bool:
    """CJK punctuation and full-width forms: no space on either side."""
    cp = ord(ch)
    return 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFFEF or 0xFE30 <= cp <= 0xFE4F


def _is_closing(ch: str) -> bool:
    return unicodedata.category(ch) in ("Po", "Pe", "Pf") and ch not in "#@&*"


def normalise(text: str) -> str:
    """Join Vosk's tokens into natural text: no space between two Han characters nor next to
    CJK punctuation; one space around Latin words and numbers; none before closing
    punctuation."""
    tokens = [t for t in _SPACE.split(text.strip()) if t]
    if not tokens:
        return ""
    out = tokens[0]
    for tok in tokens[1:]:
        left, right = out[-1], tok[0]
        if ((_is_han(left) and _is_han(right)) or _is_cjk_punct(left) or _is_cjk_punct(right)
                or _is_closing(right)):
            out += tok
        else:
            out += " " + tok
    return out
