"""Files a test keeps for a human to look at afterwards (recordings), under test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

from lab.harness import REPO

ARTIFACTS = REPO / "test-artifacts"


def copy_artifact(src: Path | None, artifacts: Path, name: str) -> None:
    if src is not None and src.exists():
        shutil.copy(src, artifacts / name)
