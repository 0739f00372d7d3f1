"""The two-level classification a case needs before it leaves 受理: the 诉求类型 (appeal type:
咨询/求助/投诉/举报/建议/表扬) and the 事项 (matter) from an editable tree such as
城乡建设 › 市容环卫 › 占道经营. The default tree ships as matters.json; a province replaces it
with its own file ([case_loop] taxonomy_file)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).with_name("matters.json")
SEPARATOR = " › "


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Matter:
    code: str  # dotted path of ids: "urban.sanitation.street_vending"
    name: str
    parent: str | None
    children: tuple[str, ...] = ()

    @property
    def leaf(self) -> bool:
        return not self.children


@dataclass(frozen=True)
class Taxonomy:
    appeal_types: dict[str, str]
    matters: dict[str, Matter] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Taxonomy:
        src = path or DEFAULT_FILE
        try:
            data = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TaxonomyError(f"{src}: {exc}") from None
        return cls.from_dict(data, str(src))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "taxonomy") -> Taxonomy:
        types = data.get("appeal_types")
        if not isinstance(types, dict) or not types:
            raise TaxonomyError(f"{where}: appeal_types: a table of code = name is needed")
        matters: dict[str, Matter] = {}

        def walk(tree: Any, parent: str | None, at: str) -> tuple[str, ...]:
            if not isinstance(tree, dict) or not tree:
                raise TaxonomyError(f"{where}: {at}: a table of matters is needed")
            codes = []
            for key, node in tree.items():
                if not key.replace("_", "").isalnum() or not key.isascii():
                    raise TaxonomyError(f"{where}: {at}.{key}: ids are ASCII letters, digits, _")
                if not isinstance(node, dict) or not isinstance(node.get("name"), str):
                    raise TaxonomyError(f"{where}: {at}.{key}.name: a display name is needed")
                code = f"{parent}.{key}" if parent else key
                kids = walk(node["children"], code, f"{at}.{key}.children") \
                    if "children" in node else ()
                matters[code] = Matter(code, node["name"], parent, kids)
                codes.append(code)
            return tuple(codes)

        walk(data.get("matters"), None, "matters")
        return cls(dict(types), matters)

    def check(self, appeal_type: str | None, matter: str | None) -> list[str]:
        """What is wrong with a classification (empty: fine). A matter must be a leaf."""
        problems = []
        if appeal_type not in self.appeal_types:
            problems.append(f"appeal_type: unknown {appeal_type!r}")
        m = self.matters.get(matter or "")
        if m is None:
            problems.append(f"matter: unknown {matter!r}")
        elif not m.leaf:
            problems.append(f"matter: {matter!r} is a group; choose one of its items")
        return problems

    def path_names(self, code: str | None) -> str:
        """"城乡建设 › 市容环卫 › 占道经营" (the code itself when unknown)."""
        names: list[str] = []
        cur = self.matters.get(code or "")
        if cur is None:
            return code or ""
        while cur is not None:
            names.append(cur.name)
            cur = self.matters.get(cur.parent) if cur.parent else None
        return SEPARATOR.join(reversed(names))

    def tree(self) -> list[dict[str, Any]]:
        """The tree for the console: [{code, name, children: [...]}]."""

        def node(code: str) -> dict[str, Any]:
            m = self.matters[code]
            return {"code": code, "name": m.name, "children": [node(c) for c in m.children]}

        return [node(c) for c, m in self.matters.items() if m.parent is None]

    def leaves(self) -> list[str]:
        return [c for c, m in self.matters.items() if m.leaf]
