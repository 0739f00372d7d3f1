"""Redis with a password (issue 15, medium 9): a real redis-server started here with
``--requirepass``; the service logs in with the password from the environment through the
URL's ``${VAR}``; a wrong or missing password stops it with an error that says what to fix and
never shows the password; docker compose runs Redis with AUTH."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import ConfigError
from common.privacy import PersonalData
from common.redisconn import open_redis
from hotline.service import HotlineService
from lab.harness import REPO, free_port, lab_config


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is needed (scripts/bootstrap.sh installs it)"
    port, password = free_port(), secrets.token_urlsafe(24)
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                             "--requirepass", password, "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        # Started once it says so (its own log line), not after a sleep.
        for line in iter(proc.stdout.readline, b""):
            if b"Ready to accept connections" in line:
                break
        else:
            pytest.fail("redis-server did not start")
        yield port, password
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_password_env() -> Iterator[None]:
    before = os.environ.get("HOTLINE_REDIS_PASSWORD")
    yield
    if before is None:
        os.environ.pop("HOTLINE_REDIS_PASSWORD", None)
    else:
        os.environ["HOTLINE_REDIS_PASSWORD"] = before


async def test_the_service_logs_in_to_redis_with_the_password_from_the_environment(
        protected_redis: tuple[int, str], tmp_path: Path, redis_password_env: None) -> None:
    port, password = protected_redis
    url = f"redis://:${{HOTLINE_REDIS_PASSWORD}}@127.0.0.1:{port}/0"
    cfg = lab_config(tmp_path, overrides={"redis.url": url})
    assert password not in cfg.redis.url  # the file names the variable only

    os.environ["HOTLINE_REDIS_PASSWORD"] = password
    client = await open_redis(cfg)
    try:
        await client.set("hotline-auth-test", "ok")
        assert await client.get("hotline-auth-test") == "ok"
    finally:
        await client.aclose()

    os.environ["HOTLINE_REDIS_PASSWORD"] = "not-" + password
    with pytest.raises(ConfigError) as wrong:
        await open_redis(cfg)
    message = str(wrong.value)
    assert "redis.url" in message and "refused the login" in message
    assert "HOTLINE_REDIS_PASSWORD" in message and f"127.0.0.1:{port}" in message
    assert password not in message

    # The service stops at start with the same error (not a stack trace from Redis).
    service = HotlineService(cfg, ami_secret=cfg.ami_secret,
                             personal=PersonalData(cfg.data_key))
    try:
        with pytest.raises(ConfigError, match="refused the login"):
            await service.start()
    finally:
        if service.engine is not None:
            await service.engine.dispose()

    # No password at all (the old default URL) is refused the same way.
    bare = lab_config(tmp_path, overrides={"redis.url": f"redis://127.0.0.1:{port}/0"})
    with pytest.raises(ConfigError, match="refused the login"):
        await open_redis(bare)


def test_rediss_needs_tls_and_the_ca_is_only_for_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_ca"):
        lab_config(tmp_path, overrides={"redis.url": "redis://127.0.0.1:6379/0",
                                        "redis.tls_ca": "ca.pem"})
    cfg = lab_config(tmp_path, overrides={"redis.url": "rediss://127.0.0.1:6380/0",
                                          "redis.tls_ca": "ca.pem"})
    from common.redisconn import redis_client

    client = redis_client(cfg)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"


def test_compose_runs_redis_with_auth() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/bootstrap.sh installs it"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    names = ["HOTLINE_AMI_SECRET", "HOTLINE_SIP_SECRET", "HOTLINE_DATA_KEY",
             "HOTLINE_SESSION_SECRET", "HOTLINE_DB_PASSWORD", "HOTLINE_REDIS_PASSWORD"]
    env.update({k: f"test-{k.lower()}" for k in names})
    out = subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    redis = out.stdout.split("\n  redis:", 1)[1]
    assert "--requirepass" in redis and "test-hotline_redis_password" in redis
    assert "REDISCLI_AUTH" in redis  # the health check logs in too
    missing = dict(env)
    missing.pop("HOTLINE_REDIS_PASSWORD")
    out = subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, timeout=60, env=missing, cwd=REPO)
    assert out.returncode != 0 and "set HOTLINE_REDIS_PASSWORD" in out.stderr

