"""Where the service's CPU goes, from a py-spy profile (``bench/load.py --profile X.txt``).

Reads py-spy's collapsed stacks ("frame;frame;... count", each frame "function (file:line)")
and attributes every sample twice:

- **ours**: the innermost frame in this repository's code (``telephony/calls/tracker.py:handle``)
  — which of our functions the time is spent under;
- **library**: the leaf frame's package (asyncio, sqlalchemy, asyncpg, redis, json, logging ...)
  — what the time is spent in.

Prints JSON (shares of all samples, and ms per call when ``--cpu-ms-per-call`` is given);
writes beside the profile a Markdown table (.md), a bar chart (.png) and a flame graph (.svg):

    .venv/bin/python bench/profile_summary.py /tmp/service.txt --cpu-ms-per-call 57.9
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

OURS = ("telephony", "cases", "queueing", "asr", "agent_desk", "common", "hotline")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _where(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame)
    return (m["func"], m["file"]) if m else (frame, "")


def _module(file: str) -> str | None:
    """'/work/main/telephony/calls/tracker.py' -> 'telephony/calls/tracker.py' (ours only)."""
    parts = Path(file).parts
    if "site-packages" in parts or any(x.startswith("python3") for x in parts):
        return None
    for i, part in enumerate(parts):
        if part in OURS:
            return "/".join(parts[i:])
    return None


def library(file: str) -> str:
    parts = Path(file).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    mod = _module(file)
    if mod:
        return "ours:" + mod.split("/")[0]
    if file.endswith("asyncio/runners.py"):
        return "event loop (uvloop, native)"  # py-spy shows uvloop's own time here
    for i, part in enumerate(parts):
        if part.startswith("python3"):
            rest = parts[i + 1:]
            return rest[0].removesuffix(".py") if rest else "python"
    return file or "native"


# What the time is for: the first category whose marks a stack holds (order matters: a
# case write under an AMI handler is the case store's).
CATEGORIES = (
    ("case store (SQLAlchemy, asyncpg)", ("sqlalchemy", "asyncpg", "cases/store.py")),
    ("Redis (live state, wallboard feed)", ("redis/",)),
    ("recordings (seal, move, spool scan)", ("asr/service.py", "common/sealed.py")),
    ("AMI (read, parse, hand to rooms)", ("telephony/ami.py", "common/events.py",
                                          "hotline/nodes.py", "telephony/")),
    ("console, wallboard, other rooms", ("agent_desk/", "queueing/", "aiohttp", "cases/")),
    ("event loop itself (uvloop: I/O, callbacks)", ("asyncio/runners.py",)),
)


def category(stack: tuple[str, ...]) -> str:
    text = ";".join(stack)
    for name, marks in CATEGORIES:
        if any(m in text for m in marks):
            return name
    return "other"


def summarise(stacks: Counter[tuple[str, ...]], top: int = 25) -> dict[str, Any]:
    total = sum(stacks.values())
    kinds: Counter[str] = Counter()
    for stack, n in stacks.items():
        kinds[category(stack)] += n
    ours: Counter[str] = Counter()
    leaf_lib: Counter[str] = Counter()
    entry: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = [_where(f) for f in stack]
        # The launcher (hotline/cli.py's main, under which the event loop runs) is no room.
        mine = [(func, mod) for func, file in frames
                if (mod := _module(file)) and mod != "hotline/cli.py"]
        ours[f"{mine[-1][1]}:{mine[-1][0]}" if mine else "(none of ours)"] += n
        # The outermost of ours under the event loop: which room the time belongs to.
        entry[f"{mine[0][1]}:{mine[0][0]}" if mine else "(none of ours)"] += n
        leaf_lib[library(frames[-1][1]) if frames else "?"] += n

    def share(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"where": k, "samples": v, "share": round(v / total, 4)}
                for k, v in c.most_common(top)]

    return {"samples": total, "category": share(kinds), "innermost_ours": share(ours),
            "outermost_ours": share(entry), "leaf_library": share(leaf_lib)}


def markdown(summary: dict[str, Any], ms_per_call: float | None) -> str:
    out = [f"{summary['samples']} samples" + (
        f"; the service's CPU per call {ms_per_call:.1f} ms" if ms_per_call else "")]
    for key, title in (("category", "What the time is for"),
                       ("leaf_library", "Leaf frame's library"),
                       ("outermost_ours", "Outermost frame of ours (the room)"),
                       ("innermost_ours", "Innermost frame of ours")):
        out += ["", f"### {title}", "", "| where | share | ms per call |", "| --- | --- | --- |"]
        for row in summary[key]:
            ms = f"{row['share'] * ms_per_call:.2f}" if ms_per_call else ""
            out.append(f"| `{row['where']}` | {row['share'] * 100:.1f} % | {ms} |")
    return "\n".join(out) + "\n"


def plot(summary: dict[str, Any], out: Path, ms_per_call: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    for ax, key, title in ((axes[0], "category", "what the service's CPU is for"),
                           (axes[1], "leaf_library", "leaf frame's library")):
        rows = summary[key][:12][::-1]
        scale = ms_per_call or 100.0
        ax.barh([r["where"][-48:] for r in rows], [r["share"] * scale for r in rows])
        ax.set_xlabel("ms of service CPU per call" if ms_per_call else "% of samples")
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def flame_svg(stacks: Counter[tuple[str, ...]], out: Path, title: str,
              width: int = 1600, row: int = 16, min_share: float = 0.002) -> None:
    """A flame graph of the collapsed stacks (root at the bottom, width = samples), as one
    self-contained SVG: each frame's name and share in its tooltip."""
    from html import escape

    tree: dict[str, Any] = {"n": 0, "kids": {}}
    for stack, n in stacks.items():
        node = tree
        node["n"] += n
        for frame in stack:
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += n
    total = tree["n"] or 1
    boxes: list[tuple[float, int, float, str, int]] = []

    def walk(node: dict[str, Any], x: float, depth: int) -> int:
        deepest = depth
        for name, kid in sorted(node["kids"].items()):
            w = kid["n"] / total
            if w >= min_share:
                boxes.append((x, depth, w, name, kid["n"]))
                deepest = max(deepest, walk(kid, x, depth + 1))
            x += w
        return deepest

    depth = walk(tree, 0.0, 0) + 1
    height = (depth + 2) * row
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="monospace" font-size="10">',
             f'<text x="4" y="12">{escape(title)} ({total} samples)</text>']
    for x, d, w, name, n in boxes:
        func, file = _where(name)
        hue = 25 if _module(file) else (200 if "site-packages" in file else 50)
        px, pw, py = x * width, w * width, height - (d + 1) * row
        label = escape(func if pw > 7 * len(func) else func[: max(0, int(pw / 7) - 1)])
        parts.append(
            f'<g><title>{escape(name)}: {n} samples, {n / total:.1%}</title>'
            f'<rect x="{px:.1f}" y="{py}" width="{max(pw - 0.5, 0.5):.1f}" height="{row - 1}" '
            f'fill="hsl({hue},70%,{55 + (hash(func) % 25)}%)"/>'
            f'<text x="{px + 2:.1f}" y="{py + row - 4}">{label}</text></g>')
    parts.append("</svg>")
    out.write_text("\n".join(parts), encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("profile", type=Path, help="py-spy collapsed stacks (-f raw)")
    p.add_argument("--cpu-ms-per-call", type=float, default=None,
                   help="the run's service CPU per call (load.json), to turn shares into ms")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    stacks = parse(args.profile)
    summary = summarise(stacks, args.top)
    flame_svg(stacks, args.profile.with_suffix(".svg"), f"service: {args.profile.name}")
    summary["profile"] = str(args.profile)
    summary["cpu_ms_per_call"] = args.cpu_ms_per_call
    args.profile.with_suffix(".md").write_text(markdown(summary, args.cpu_ms_per_call),
                                              encoding="utf-8")
    plot(summary, args.profile.with_suffix(".png"), args.cpu_ms_per_call)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
