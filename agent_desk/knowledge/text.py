"""Chinese text into search words: jieba's search-mode segmentation (``cut_for_search``: a
long word and its shorter words both, 社保卡 → 社保, 社保卡), normalised so that SQLite's
FTS5 (unicode61) and PostgreSQL's tsvector hold exactly the same words, and so that the
ranking (ranking.py) counts the same words whatever the database.

A word is a run of letters and digits (NFKC: full-width Latin and digits become ASCII),
lower-cased; punctuation and the words that carry no meaning in a question (的, 怎么, 请问 …)
are dropped. The words are stored space-joined.

jieba's dictionary loads once per process (about a second; its cache is in the temp dir), in a
thread on first use (``Segmenter.ready``), so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import unicodedata
from collections.abc import Iterable

import jieba

# The hotline's words jieba's general dictionary splits or misses: kept whole, so a question
# and an article agree on them (cut_for_search still adds their shorter words).
VOCABULARY = (
    "12345", "社保卡", "医保卡", "社会保障卡", "公积金", "住房公积金", "居住证", "暂住证",
    "身份证", "户口本", "户口迁移", "准迁证", "出入境", "港澳通行证", "台湾通行证", "护照",
    "签注", "不动产", "不动产登记", "不动产权证", "房产证", "营业执照", "企业开办", "个体工商户",
    "一网通办", "电子营业执照", "占道经营", "流动摊贩", "烧烤摊", "油烟扰民", "噪音扰民",
    "噪声扰民", "广场舞", "夜间施工", "渣土车", "停水", "停电", "供水", "供电", "燃气", "停气",
    "物业费", "物业公司", "业主委员会", "医保", "医疗保险", "异地就医", "门诊慢特病", "参保",
    "灵活就业", "养老保险", "失业保险", "失业金", "工伤保险", "生育津贴", "退休", "欠薪",
    "拖欠工资", "劳动仲裁", "劳动合同", "最低工资", "新生儿", "出生医学证明", "入户", "落户",
    "人才引进", "积分落户", "学区", "入学", "义务教育", "校外培训", "公交卡", "网约车",
    "出租车", "共享单车", "违章停车", "电动自行车", "车辆年检", "驾驶证", "行驶证", "核酸",
    "疫苗", "接种", "健康码", "消费维权", "预付卡", "退费", "食品安全", "价格欺诈", "市场监管",
    "垃圾分类", "大件垃圾", "路灯", "窨井盖", "下水道", "化粪池", "积水", "违建", "违章建筑",
    "群租房", "房屋租赁", "租房合同", "住房租赁", "公租房", "保障房", "经适房", "契税",
    "个人所得税", "个税", "专项附加扣除", "发票", "税务", "低保", "特困", "残疾证", "残疾人",
    "老年人", "高龄津贴", "占道", "摆摊", "无房证明", "打零工", "炸街",
    "养老服务", "独生子女", "结婚登记", "离婚登记", "婚姻登记", "殡葬",
    "火化", "公证", "法律援助", "信访", "市民卡", "敬老卡", "学生卡", "退役军人", "优抚",
)

# Words of the question, not of its matter.
STOPWORDS = frozenset("""
的 了 吗 呢 吧 啊 呀 哦 嗯 么 着 过 是 在 有 和 与 或 及 就 都 也 还 又 把 被 让 给 对 从 向
到 为 为了 以 而 并 等 之 其 这 那 这个 那个 这样 那样 这些 那些 什么 怎么 怎么样 怎样 如何
为什么 哪 哪里 哪儿 哪个 哪些 多少 几 谁 请问 你好 您好 您 你 我 我们 你们 他 她 它 他们
咱 自己 人家 一下 一个 一些 可以 可不可以 能 能不能 能否 会 要 想 需要 应该 得 该 是不是
有没有 没有 没 不 很 太 非常 比较 已经 现在 今天 昨天 明天 刚才 然后 但是 但 可是 因为 所以
如果 的话 还是 还有 就是 不能 这边 那边 麻烦 谢谢 帮 帮忙 帮我 问 问一下 咨询 一下子 个 了解
""".split())

# A caller's words for what articles say otherwise: a question holding the key also asks for
# these (questions only; articles are indexed as written).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "摆摊": ("摊贩", "占道经营"), "摆摊设点": ("摊贩", "占道经营"), "打零工": ("灵活就业",),
    "房产证": ("不动产权证书", "不动产"), "房本": ("不动产权证书", "不动产"),
    "煤气": ("燃气",), "天然气": ("燃气",), "辞职": ("离职",), "辞退": ("离职", "解除"),
    "老公": ("夫妻", "配偶"), "老婆": ("夫妻", "配偶"), "查": ("查询",),
    "上户口": ("落户", "出生登记"), "退钱": ("退费",), "吵": ("噪音", "扰民"),
    "太吵": ("噪音", "扰民"), "看病": ("就医",), "取": ("提取",), "取出": ("提取",),
    "买": ("购买", "购房"), "房子": ("住房",), "丢": ("遗失", "丢失"), "掉": ("遗失",),
    "补": ("补办", "补发", "补领"),
}

MAX_WORD = 32

log = logging.getLogger(__name__)


def normalise(word: str) -> list[str]:
    """One jieba word as search words: NFKC, lower case, split at anything but letters and
    digits (unicode61 and the tsvector then see exactly these)."""
    out: list[str] = []
    run: list[str] = []
    for ch in unicodedata.normalize("NFKC", word).lower():
        if ch.isalnum():
            run.append(ch)
        elif run:
            out.append("".join(run))
            run = []
    if run:
        out.append("".join(run))
    # Longer runs are codes and numbers nobody searches by (and kb_terms keeps 64).
    return [w for w in out if len(w) <= MAX_WORD]


class Segmenter:
    """jieba with the hotline's vocabulary: its own dictionary instance (other rooms may use
    jieba with theirs), loaded once."""

    _shared: Segmenter | None = None

    @classmethod
    def shared(cls) -> Segmenter:
        """The process's one (the dictionary takes tens of MB: every console app of the
        process shares it)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self, extra_words: Iterable[str] = ()) -> None:
        self._jieba = jieba.Tokenizer()
        self._extra = tuple(extra_words)
        self._lock = threading.Lock()
        self._loaded = False

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" lines
            self._jieba.initialize()
            for w in (*VOCABULARY, *self._extra):
                self._jieba.add_word(w)
            self._loaded = True

    async def ready(self) -> None:
        """The dictionary loaded (in a thread: it takes about a second)."""
        if not self._loaded:
            await asyncio.to_thread(self._load)

    def words(self, text: str) -> list[str]:
        """The search words of a text, in order, repeated as often as they occur."""
        self._load()
        out: list[str] = []
        # NFKC first: jieba reads full-width Latin and digits one character at a time.
        for w in self._jieba.cut_for_search(unicodedata.normalize("NFKC", text)):
            for n in normalise(w):
                if n not in STOPWORDS:
                    out.append(n)
        return out


def expanded(words: Iterable[str]) -> list[str]:
    """A question's words and the articles' words for them (SYNONYMS)."""
    out: list[str] = []
    for w in words:
        out.append(w)
        for alt in SYNONYMS.get(w, ()):
            out += normalise(alt)
    return out


def joined(words: Iterable[str]) -> str:
    return " ".join(words)
