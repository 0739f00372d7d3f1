"""The production deployment (docker-compose.yml). Docker has no engine on these machines, so
the compose file is validated by `docker-compose config` (Debian's docker-compose), every secret
must come from the environment, and the Asterisk configuration its containers mount is the one
the tests run, rendered by the same code for the container's paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.lab import REPO, lab_config_toml

SECRETS = ["HOTLINE_AMI_SECRET", "HOTLINE_SIP_SECRET", "HOTLINE_DATA_KEY",
           "HOTLINE_SESSION_SECRET", "HOTLINE_DB_PASSWORD"]


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/bootstrap.sh installs it"
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), *args],
                          capture_output=True, text=True, timeout=60, env={**clean, **env},
                          cwd=REPO)


ALL = {k: f"test-{k.lower()}" for k in SECRETS}


def test_compose_file_validates_with_services_volumes_and_health_checks():
    out = compose("config", env=ALL)
    assert out.returncode == 0, out.stderr
    services = set(compose("config", "--services", env=ALL).stdout.split())
    assert services == {"postgres", "redis", "asterisk-config", "asterisk", "hotline"}
    volumes = set(compose("config", "--volumes", env=ALL).stdout.split())
    assert volumes == {"pgdata", "redisdata", "hotline-data"}
    blocks = _service_blocks(out.stdout)
    for name in ("postgres", "redis", "hotline"):
        assert "    healthcheck:" in blocks[name], f"{name} has no health check"
    assert "pgdata:/var/lib/postgresql/data" in blocks["postgres"]
    assert "hotline-data:/var/lib/hotline" in blocks["hotline"]
    assert "hotline-data:/var/lib/hotline" in blocks["asterisk"]
    # Asterisk's own health check is in its image.
    assert "HEALTHCHECK" in (REPO / "asterisk-conf" / "Dockerfile").read_text()
    # The secrets reach the containers from the environment, never from the file.
    for k, v in ALL.items():
        assert v not in (REPO / "docker-compose.yml").read_text()
        assert k in (REPO / "docker-compose.yml").read_text()


@pytest.mark.parametrize("missing", SECRETS)
def test_each_secret_is_required_by_name(missing):
    env = {k: v for k, v in ALL.items() if k != missing}
    out = compose("config", env=env)
    assert out.returncode != 0
    assert f"set {missing}" in out.stderr, out.stderr


def test_container_asterisk_config_is_the_tests_config_at_the_containers_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    cfg = tmp_path / "hotline.toml"
    cfg.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    assert main(["--config", str(cfg), "asterisk", "render", "--for-container"]) == 0
    rendered = [Path(p) for p in capsys.readouterr().out.split()]
    etc = tmp_path / "data" / "asterisk" / "node1" / "etc"
    names = {p.name for p in rendered}
    assert {"asterisk.conf", "pjsip.conf", "extensions.conf", "queues.conf",
            "manager.conf"} <= names, names
    assert all(p.is_relative_to(tmp_path / "data") for p in rendered)
    asterisk_conf = (etc / "asterisk.conf").read_text()
    assert "/srv/hotline" in asterisk_conf and str(tmp_path) not in asterisk_conf
    manager = (etc / "manager.conf").read_text()
    assert "bindaddr = 127.0.0.1" in manager.replace("bindaddr=", "bindaddr = ")
    # The same templates as the tests' Asterisk: rendered from the same config for this
    # machine's runtime, the dialplan and queues are identical.
    container = {n: (etc / n).read_text() for n in ("extensions.conf", "queues.conf")}
    assert main(["--config", str(cfg), "asterisk", "render"]) == 0
    capsys.readouterr()
    inst = str(tmp_path / "data" / "asterisk" / "node1")
    for n, text in container.items():
        assert (etc / n).read_text().replace(inst, "/srv/hotline") == text, n


def _service_blocks(config_yaml: str) -> dict[str, str]:
    """`docker-compose config` output split by service (two-space indented names)."""
    blocks: dict[str, list[str]] = {}
    current = None
    in_services = False
    for line in config_yaml.splitlines():
        if not line.startswith(" "):
            in_services = line == "services:"
            current = None
            continue
        if in_services and line.startswith("  ") and not line.startswith("   "):
            current = line.strip().rstrip(":")
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line)
    return {k: "\n".join(v) for k, v in blocks.items()}
