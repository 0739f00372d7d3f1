"""What this room reads of a case's text, and what it keeps of it.

Every text (the form's subject and content, the transcript) goes through ``clean`` first:
phone numbers masked by ``common.privacy.scrub``, then every digit, masked digit and run of
Chinese numerals dropped (house numbers, ID numbers, amounts: nothing a topic needs). Only
then is it segmented (jieba, a private dictionary so the domain's words segment whole), and
only words leave: as keyed hashes (``term_hash``) for keyword counts and for the classifier's
features. Nothing here keeps a text.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import jieba
import jieba.posseg

from common.privacy import scrub

# Digits as written (ASCII and full width), what scrub masked them with, and numerals read
# out digit by digit ("一三八…", "幺二三四五"): four or more in a row are a number, not a word.
_DIGITS = re.compile(r"[0-9０-９]+")
_MASKED = re.compile(r"[*＊]+")
_NUMERALS = re.compile(r"[〇零一二三四五六七八九幺两]{4,}")
_WORD = re.compile(r"[\w\u3400-\u9fff]")
# The jieba tags of people's names: never counted as a keyword.
_NAME_TAGS = ("nr", "nrfg", "nrt")
DIM = 1 << 18  # the classifier's hashed feature space

STOPWORDS = frozenset("""
的 了 是 我 你 他 她 它 们 在 有 和 与 及 就 都 也 还 又 很 太 更 最 被 把 让 给 对 向 从 到 于 为
以 而 或 但 并 等 这 那 哪 啊 吧 呢 吗 嘛 哦 呀 嗯 哈 喂 么 个 些 之 其 该 此 着 过 得 地 将 会 能
要 想 说 讲 问 请 您 您好 你好 喂喂 谢谢 感谢 麻烦 一下 一个 一些 这个 那个 这些 那些 这里 那里
这边 那边 这样 那样 什么 怎么 怎么办 为什么 怎样 如何 多少 现在 已经 还是 但是 因为 所以 如果
可以 可能 应该 需要 希望 要求 反映 情况 问题 处理 解决 尽快 帮忙 帮助 联系 电话 号码 热线
市民 来电 先生 女士 老师 师傅 工作人员 那么 然后 就是 还有 没有 不是 只是 一直 总是 非常 特别
比较 今天 昨天 明天 前天 上午 下午 晚上 早上 中午 时候 目前 当时 之前 以后 之后 这次 上次 我们
你们 他们 她们 大家 自己 家里 本人 具体 相关 有关 进行 表示 认为 觉得 知道 看看 看到 听说 告诉
开始 到现在 还没 出来 起来 发生 出现 发现 导致 造成 一样 好几 几次 好几次 经常 突然 一起 还要
""".split())


def clean(text: str) -> str:
    """The text with personal numbers out: phone numbers masked (scrub), then every digit,
    mask and numeral run removed. What follows sees no number."""
    t = scrub(text)
    t = _DIGITS.sub(" ", t)
    t = _MASKED.sub(" ", t)
    return _NUMERALS.sub(" ", t)


class Segmenter:
    """jieba with its own dictionary (the process's default one is left as it is), the
    domain's words added so they segment whole ("停水", "没水", "占道经营"). Loaded on first
    use (about half a second); thread-safe, so the work can run off the event loop."""

    def __init__(self, extra_words: Iterable[str] = ()):
        self._extra = sorted({w for w in extra_words if w})
        self._tk: jieba.Tokenizer | None = None
        self._lock = threading.Lock()

    def _ready(self) -> jieba.Tokenizer:
        if self._tk is None:
            with self._lock:
                if self._tk is None:
                    jieba.setLogLevel(logging.WARNING)
                    tk = jieba.Tokenizer()
                    tk.initialize()
                    for w in self._extra:
                        tk.add_word(w, freq=max(tk.FREQ.get(w) or 0, 2000))
                    self._tk = tk
        return self._tk

    def __call__(self, text: str) -> list[str]:
        return list(self._ready().lcut(text))

    def known(self, word: str) -> bool:
        """A word of the dictionary (not one guessed from unknown characters: names, mostly)."""
        return bool(self._ready().FREQ.get(word))


def tokens(text: str, segment: Callable[[str], list[str]]) -> list[str]:
    """The words of a text: cleaned first, segmented, without punctuation and stopwords."""
    out = []
    for w in segment(clean(text)):
        w = w.strip().lower()
        if w and _WORD.search(w) and w not in STOPWORDS:
            out.append(w)
    return out


def topic_words(words: Sequence[str], segmenter: Segmenter) -> set[str]:
    """The words worth counting as a keyword: two characters or more, in the dictionary, and
    not a person's name."""
    tags = jieba.posseg.dt.word_tag_tab
    return {w for w in words if len(w) >= 2 and segmenter.known(w)
            and tags.get(w) not in _NAME_TAGS}


def features(words: Sequence[str], hasher: Callable[[str], str]) -> Counter[int]:
    """Hashed features of the words (each word and each pair of neighbours): what the
    classifier sees. A keyed hash, so the model holds no word in clear."""
    grams = list(words) + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return Counter(int(hasher(g)[:8], 16) % DIM for g in grams)
