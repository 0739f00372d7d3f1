"""`hotline config check` as its own process: a bad file named with exit code 2, the example
accepted, and weak SIP and AMI secrets refused with the variable named (in process too)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from common.config import ConfigError, parse_config, secret_weakness
from lab.harness import EXAMPLE_CONFIG, REPO, lab_config_toml, to_toml


def test_cli_config_check_reports_bad_file_with_exit_code_2(tmp_path):
    bad = tmp_path / "hotline.toml"
    raw = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    raw["queueing"]["strategy"] = "whoever-shouts"
    bad.write_text(to_toml(raw), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(bad), "config",
                          "check"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert "queueing.strategy" in res.stderr and "whoever-shouts" in res.stderr
    good = subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(EXAMPLE_CONFIG),
                           "config", "check"], capture_output=True, text=True, cwd=REPO)
    assert "OK" in good.stdout


def test_weak_sip_and_ami_secrets_are_refused_with_a_clear_message(tmp_path, monkeypatch):
    cfg = parse_config(lab_config_toml(tmp_path), source="t.toml", base_dir=tmp_path)
    for weak in ("changeme-changeme", "aaaaaaaaaaaaaaaaaaaa", "password12345678",
                 "abcdefghijklmnopqrstu", "Secret-123"):
        monkeypatch.setenv("HOTLINE_SIP_SECRET", weak)
        with pytest.raises(ConfigError) as err:
            _ = cfg.sip_secret
        assert "security.sip_secret_env" in str(err.value) and "HOTLINE_SIP_SECRET" in str(
            err.value), err.value
        monkeypatch.setenv("HOTLINE_AMI_SECRET", weak)
        with pytest.raises(ConfigError, match="HOTLINE_AMI_SECRET"):
            _ = cfg.ami_secret
    strong = "vX7q-Lm2pR9zKt4wB8nE"
    assert secret_weakness(strong) is None
    monkeypatch.setenv("HOTLINE_SIP_SECRET", strong)
    assert cfg.sip_secret == strong
    # `hotline config check` says it too, naming the variable.
    path = tmp_path / "hotline.toml"
    path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    env = {**os.environ, "HOTLINE_SIP_SECRET": "hotline-hotline-1"}
    out = subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(path), "config",
                          "check"], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=60)
    assert out.returncode == 2 and "HOTLINE_SIP_SECRET is too weak" in out.stdout, out
