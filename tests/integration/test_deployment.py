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
from lab.harness import REPO, lab_config_toml

SECRETS = ["HOTLINE_AMI_SECRET", "HOTLINE_SIP_SECRET", "HOTLINE_DATA_KEY",
           "HOTLINE_SESSION_SECRET", "HOTLINE_DB_PASSWORD", "HOTLINE_REDIS_PASSWORD"]


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


def _dockerfile_instructions(path: Path) -> dict[str, str]:
    """A Dockerfile's instructions by keyword (continuation lines joined; the last wins)."""
    out: dict[str, str] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.setdefault(word, "")
            out[word] = out[word] + " " + rest if word == "RUN" else rest
    return out


@pytest.mark.asterisk
async def test_asterisk_image_recipe_runs_here_with_the_container_config(tmp_path: Path):
    """The Asterisk image is Debian sid's asterisk packages started with the rendered files
    at /srv/hotline: the same packages as the cached sid root, so its CMD and HEALTHCHECK
    are run here against a container-rendered node."""
    import asyncio
    import json as _json

    from common.config import load_config
    from telephony.asterisk.instance import AsteriskInstance, instance_dir
    from telephony.asterisk.runtime import CHROOT_MOUNT, PACKAGES, ensure_runtime

    recipe = _dockerfile_instructions(REPO / "asterisk-conf" / "Dockerfile")
    assert recipe["FROM"].startswith("debian:sid")
    installed = [p.split("=", 1)[0] for p in  # pinned: name=version
                 recipe["RUN"].split("apt-get install", 1)[1].split("&&", 1)[0].split()]
    assert set(PACKAGES) <= set(installed), installed
    cmd = _json.loads(recipe["CMD"])[-1]  # ["sh", "-c", "ln ... && exec asterisk ..."]
    start = cmd.split("exec ", 1)[1].split()
    assert start[0] == "asterisk" and f"{CHROOT_MOUNT}/etc/asterisk.conf" in start
    health = recipe["HEALTHCHECK"].split(" CMD ", 1)[1].split(" || ", 1)[0]

    runtime = ensure_runtime()
    if runtime.root is None:
        pytest.skip("an installed Asterisk: the container paths apply to the sid root only")
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    assert main(["--config", str(cfg_path), "asterisk", "render", "--for-container"]) == 0
    cfg = load_config(cfg_path)
    node = cfg.nodes[0]
    inst = AsteriskInstance(runtime, instance_dir(cfg, node), node)
    # The image's command line, in the sid root with the node's files where the image has
    # them (its CMD links the volume's node folder at /srv/hotline; here it is bind-mounted).
    inst.start(owner_pid=os.getpid())
    try:
        assert sorted(start[1:]) == sorted(["-f", "-C", f"{CHROOT_MOUNT}/etc/asterisk.conf"])
        ours = runtime.argv(inst.dir, "-f")[-1]
        assert f"asterisk -C {CHROOT_MOUNT}/etc/asterisk.conf -f" in ours
        await inst.wait_ready(cfg.ami_secret)
        # The image's HEALTHCHECK command, word for word after "asterisk".
        words = health.split(" ", 1)[1]
        args = words.replace('"core show uptime"', "").split()
        assert args == ["-C", f"{CHROOT_MOUNT}/etc/asterisk.conf", "-rx"], args
        out = await asyncio.to_thread(inst.cli, "core show uptime")
        assert "System uptime" in out
    finally:
        await asyncio.to_thread(inst.stop)
    # The service's image checks itself with `hotline health` (tests/integration/test_cli.py
    # runs it).
    compose_text = (REPO / "docker-compose.yml").read_text()
    assert '["CMD", "hotline", "health"]' in compose_text


def test_service_image_recipe_builds_a_package_that_renders_and_migrates(tmp_path: Path):
    """The service's image: only what its Dockerfile copies, built into a package as its
    `pip install` does, then run from that package (not this checkout) with the image's
    environment: it renders a node's Asterisk configuration and migrates a database."""
    import sys
    import zipfile

    recipe = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    app = tmp_path / "app"
    app.mkdir()
    for line in recipe.splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            for src in sources:
                if (REPO / src).is_dir():
                    shutil.copytree(REPO / src, app / src,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(REPO / src, app / src)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--disable-pip-version-check", "-w", str(tmp_path / "dist"),
                            str(app)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "cases" / "migrations" / "env.py").exists()
    assert (site / "agent_desk" / "static" / "console.html").exists()
    for nested in ("i18n/zh-CN.json", "vendor/lit-html/lit-html.js", "vendor/lit-html/LICENSE"):
        assert (site / "agent_desk" / "static" / nested).exists(), nested
    env_line = next(line for line in recipe.splitlines() if line.startswith("ENV "))
    image_env = dict(kv.split("=", 1) for kv in env_line.split()[1:])
    assert image_env["HOTLINE_ASTERISK_CONF"] == "/app/asterisk-conf"

    cfg = tmp_path / "hotline.toml"
    cfg.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site),
           "HOTLINE_ASTERISK_CONF": str(app / "asterisk-conf")}

    def run(*args: str, **kw: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg),
                               *args], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path, env={**env, **kw})

    where = subprocess.run([sys.executable, "-c", "import telephony; print(telephony.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(site)), where  # the package, not the checkout
    rendered = run("asterisk", "render", "--for-container")
    assert rendered.returncode == 0, rendered.stderr
    assert "pjsip.conf" in rendered.stdout and "extensions.conf" in rendered.stdout
    migrated = run("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    # Without the templates' folder the image would render nothing: it says so instead.
    lost = run("asterisk", "render", "--for-container",
               HOTLINE_ASTERISK_CONF=str(tmp_path / "nowhere"))
    assert lost.returncode == 1 and "HOTLINE_ASTERISK_CONF" in lost.stderr
