"""Installing a Vosk model from its zip file (the Mandarin models cannot be downloaded on the
hotline's machines: an operator copies the official zip over and runs
``hotline asr install-model vosk-model-small-cn-0.22.zip``)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

from asr.engine import ModelError, check_model_dir, load_model

# Published sha256 of the official models' zip files (alphacephei.com/vosk/models).
KNOWN_SHA256 = {
    "vosk-model-small-cn-0.22.zip":
        "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba",
}


class InstallError(Exception):
    pass


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install_model(archive: Path, dest: Path, *, load: bool = True) -> Path:
    """Verify (known models: sha256), unpack to ``dest`` (the configured model folder),
    check the structure and load it once. The old model stays until the new one is good."""
    if not archive.is_file():
        raise InstallError(f"{archive}: no such file")
    want = KNOWN_SHA256.get(archive.name)
    if want is not None:
        got = sha256_of(archive)
        if got != want:
            raise InstallError(f"{archive.name}: sha256 {got} does not match the published "
                               f"{want}; the file is damaged or not the official model")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise InstallError(f"{archive.name}: not a zip file ({exc})") from None
    staging = dest.with_name(dest.name + ".installing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zf:
            for name in zf.namelist():
                target = (staging / name).resolve()
                if not target.is_relative_to(staging.resolve()):
                    raise InstallError(f"{archive.name}: unsafe path {name!r} in the zip")
            zf.extractall(staging)
        root = _model_root(staging)
        check_model_dir(root)
        if load:
            load_model(root)
    except (ModelError, InstallError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(str(exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    root.rename(dest)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _model_root(folder: Path) -> Path:
    """Zips hold the model in one top folder (vosk-model-small-cn-0.22/...)."""
    if (folder / "am").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir()]
    for sub in subs:
        if (sub / "am").is_dir():
            return sub
        for deeper in sub.iterdir():
            if deeper.is_dir() and (deeper / "am").is_dir():
                return deeper
    raise InstallError("the zip holds no Vosk model (no am/ folder)")
