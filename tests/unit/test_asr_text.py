"""The Chinese spacing rules of transcripts: no spaces between Chinese words, spaces kept
between Latin words and numbers, none before Chinese punctuation."""

from __future__ import annotations

import pytest

from asr.text import normalise


@pytest.mark.parametrize(("raw", "want"), [
    ("我 想 咨询 一下 社保卡 的 补办 手续", "我想咨询一下社保卡的补办手续"),
    ("打开 App 查看 进度", "打开 App 查看进度"),
    ("iPhone 15 Pro 的 屏幕 坏 了", "iPhone 15 Pro 的屏幕坏了"),
    ("共 3 次", "共 3 次"),
    ("12345 热线", "12345 热线"),
    ("你好 ， 谢谢 。", "你好，谢谢。"),
    ("App ， 好 的", "App，好的"),
    ("WiFi 密码 是 abc 123", "WiFi 密码是 abc 123"),
    ("  社保  \t 卡 ", "社保卡"),
    ("COVID - 19 疫苗", "COVID - 19 疫苗"),
    ("", ""),
    ("ok .", "ok."),
    ("《 民法典 》 第 5 条", "《民法典》第 5 条"),
])
def test_chinese_spacing(raw, want):
    assert normalise(raw) == want
