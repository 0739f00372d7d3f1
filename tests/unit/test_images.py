"""The images (issue 15, medium 7 and low): neither runs as root, and every base image and
package is pinned to a version (not a moving tag such as ``redis:7`` or ``sid-slim``)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "Dockerfile", REPO / "asterisk-conf" / "Dockerfile"]


def _instructions(path: Path, word: str) -> list[str]:
    text = path.read_text().replace("\\\n", " ")
    return [line.strip().split(" ", 1)[1] for line in text.splitlines()
            if line.strip().startswith(word + " ")]


def test_both_images_run_as_a_user_that_is_not_root_and_the_same_uid():
    for path in DOCKERFILES:
        users = _instructions(path, "USER")
        assert users, f"{path} has no USER"
        assert users[-1].split(":")[0] not in ("root", "0"), path
    # Asterisk and the service share the data volume (rendered config 0600, spool 0700).
    uids = [re.findall(r"(?:useradd|usermod)[^&]*?-u(?:id)? (\d+)", " ".join(
        _instructions(p, "RUN"))) for p in DOCKERFILES]
    assert uids[0] and uids[0] == uids[1], uids


def test_base_images_and_packages_are_pinned_to_versions():
    for path in DOCKERFILES:
        (base,) = _instructions(path, "FROM")
        tag = base.split("@")[0].split(":", 1)[1]
        assert re.search(r"\d{8}|\d+\.\d+\.\d+", tag), f"{path}: {base} is a moving tag"
        run = " ".join(_instructions(path, "RUN"))
        installs = re.findall(r"apt-get install ([^&]*)", run)
        packages = [w for part in installs for w in part.split() if not w.startswith("-")]
        assert packages and all("=" in p for p in packages), (path, packages)
    compose = (REPO / "docker-compose.yml").read_text()
    images = re.findall(r"^\s+image: (\S+)", compose, re.M)
    assert images and all(re.search(r":\d+\.\d+\.?\d*", i) for i in images), images
