"""The console's language catalogues (agent_desk/static/i18n/): both languages say the same
things, every key the pages use exists, and no user-visible text is left in the pages' own
JS or HTML (it belongs in the catalogues). Pure file checks, no browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import agent_desk

STATIC = Path(agent_desk.__file__).parent / "static"
LANGS = ("zh-CN", "en")
# The pages' own scripts and pages; the vendored renderer is not ours to translate.
SCRIPTS = sorted(STATIC.glob("*.js"))
PAGES = sorted(STATIC.glob("*.html"))

HAN = re.compile(r"[\u3400-\u9fff]")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("key"...), and catalogue keys handed around as {key: "family.name"} to be said later.
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([^"']+)["']\s*[,)]|\bkey:\s*["']([^"']+)["']""")
# A key made at run time: t("route.green_" + who): some key must start with the prefix.
KEY_PREFIX = re.compile(r"""\bt\(\s*["']([^"']+)["']\s*\+""")
ENUM_FAMILY = re.compile(r"""\btEnum\(\s*["']([^"']+)["']""")
PAGE_KEY = re.compile(r"""data-(?:i18n(?:-opt|-placeholder)?|title)="([^"]+)\"""")
# Values of the Chinese catalogue that may hold Latin letters: the button that switches to
# English says "English"; the skills hint shows a skill's code as the supervisor types it.
LATIN_IN_ZH = {"lang.switch", "board.skills_placeholder",
               # the phone's: the scheme a page must be opened with, and the keys' names.
               "phone.error.insecure", "shortcut.hint"}


def catalogue(lang: str) -> dict[str, str]:
    doc = json.loads((STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def without_comments(js: str) -> str:
    """The script minus its // comments (which may explain things in Chinese)."""
    return re.sub(r"(^|\s)//.*$", r"\1", js, flags=re.MULTILINE)


def keys_used() -> set[str]:
    used: set[str] = set()
    for path in SCRIPTS:
        for m in LITERAL_KEY.finditer(without_comments(path.read_text(encoding="utf-8"))):
            used.add(m.group(1) or m.group(2))
    for path in PAGES:
        used.update(PAGE_KEY.findall(path.read_text(encoding="utf-8")))
    return used


def families_used() -> set[str]:
    found: set[str] = set()
    for path in SCRIPTS:
        found.update(ENUM_FAMILY.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_pages_are_found() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"app.js", "i18n.js", "console.js", "wallboard.js", "cases.js", "login.js",
            "loop.js", "supervision.js", "intake.js", "departments.js",
            "reports.js", "knowledge.js", "knowledge-edit.js"} <= names
    assert {"console.html", "wallboard.html", "cases.html", "login.html",
            "supervision.html", "intake.html", "departments.html",
            "reports.html", "knowledge.html"} <= {p.name for p in PAGES}


def test_both_languages_have_the_same_keys() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert sorted(set(zh) - set(en)) == [], "only in zh-CN"
    assert sorted(set(en) - set(zh)) == [], "only in en"


@pytest.mark.parametrize("lang", LANGS)
def test_every_value_is_text(lang: str) -> None:
    empty = [k for k, v in catalogue(lang).items() if not isinstance(v, str) or not v.strip()]
    assert empty == []


def test_placeholders_match_across_languages() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    differ = {k: (zh[k], en[k]) for k in zh
              if set(PLACEHOLDER.findall(zh[k])) != set(PLACEHOLDER.findall(en[k]))}
    assert differ == {}


def test_chinese_catalogue_is_chinese() -> None:
    latin = {k: v for k, v in catalogue("zh-CN").items()
             if k not in LATIN_IN_ZH and re.search("[A-Za-z]", PLACEHOLDER.sub("", v))}
    assert latin == {}


def test_every_key_the_pages_use_exists() -> None:
    used = keys_used()
    assert len(used) > 50  # the scan finds the keys (a broken pattern would find none)
    for lang in LANGS:
        assert sorted(used - set(catalogue(lang))) == [], lang


def test_every_key_prefix_the_scripts_use_has_keys() -> None:
    prefixes: set[str] = set()
    for path in SCRIPTS:
        prefixes.update(KEY_PREFIX.findall(without_comments(path.read_text(encoding="utf-8"))))
    assert "route.green_" in prefixes  # the scan finds them
    for lang in LANGS:
        keys = catalogue(lang)
        assert sorted(p for p in prefixes if not any(k.startswith(p) for k in keys)) == [], lang


def test_every_value_family_the_scripts_use_exists() -> None:
    families = families_used()
    assert {"state", "reason", "category", "callback_status", "fact"} <= families
    for lang in LANGS:
        prefixes = {k.split(".", 1)[0] for k in catalogue(lang)}
        assert sorted(families - prefixes) == [], lang


def test_no_text_left_in_the_pages() -> None:
    """User-visible words live in the catalogues: no Chinese in the pages' code or markup."""
    left = {p.name: HAN.findall(without_comments(p.read_text(encoding="utf-8")))
            for p in [*SCRIPTS, *PAGES]}
    assert {name: chars for name, chars in left.items() if chars} == {}
