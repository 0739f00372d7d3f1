"""The Asterisk runtime: an installed Asterisk >= 20, or a cached Debian sid root with Asterisk.

Debian bookworm has no Asterisk package, sid has Asterisk 22. The first use builds a minimal sid
root by debootstrap (about a minute) into the user's cache; later uses find it in seconds. Each
Asterisk *instance* (a node, a test run) keeps its own config, database, spool, logs and control
socket in a host directory, which a private mount namespace binds into the shared root at
``/srv/hotline``: instances never see each other's files, and the mount vanishes with the process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_VERSION = 20
# Asterisk runs as this user of its root (or of this machine, for an installed Asterisk): never
# as root, so a leaked AMI secret or a flaw in a channel driver does not own the machine.
RUN_USER = "asterisk"
CONTAINER_VERSION = "container"  # the runtime of a node in Asterisk's image (render only)
# Where an instance's directory appears inside the chroot.
CHROOT_MOUNT = "/srv/hotline"
RUNTIME_FORMAT = 1  # bump when the build recipe changes, so caches are rebuilt
PACKAGES = ("asterisk", "asterisk-modules")


class AsteriskRuntimeError(Exception):
    """The Asterisk runtime cannot be found, built or run; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("HOTLINE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / ("" if "HOTLINE_CACHE" in os.environ else "hotline")
    return Path.home() / ".cache" / "hotline"


@dataclass(frozen=True)
class AsteriskRuntime:
    """How to run Asterisk here: ``root`` is None for an installed Asterisk."""

    version: str
    binary: str
    root: Path | None = None

    @property
    def kind(self) -> str:
        return "installed" if self.root is None else "chroot"

    def run_user(self) -> tuple[int, int]:
        """The uid and gid Asterisk runs as: its root's own ``asterisk`` user, whose numbers
        can mean someone else on the host (the instance's files are handed to those numbers)."""
        passwd = (self.root or Path("/")) / "etc" / "passwd"
        try:
            lines = passwd.read_text().splitlines()
        except OSError as exc:
            raise AsteriskRuntimeError(f"cannot read {passwd}: {exc}") from None
        for line in lines:
            fields = line.split(":")
            if len(fields) > 3 and fields[0] == RUN_USER:
                return int(fields[2]), int(fields[3])
        raise AsteriskRuntimeError(
            f"no {RUN_USER} user in {passwd}: Debian's asterisk package creates it; "
            "reinstall the package (or delete the cached root to rebuild it)")

    def asterisk_path(self, instance_dir: Path) -> str:
        """Where Asterisk sees an instance's directory."""
        return str(instance_dir) if self.root is None else CHROOT_MOUNT

    def argv(self, instance_dir: Path, *args: str) -> list[str]:
        """The command running ``asterisk ARGS`` against this instance's files."""
        conf = f"{self.asterisk_path(instance_dir)}/etc/asterisk.conf"
        if self.root is None:
            return [self.binary, "-C", conf, *args]
        mount = self.root / CHROOT_MOUNT.lstrip("/")
        # One shell line so the mounts live exactly as long as the exec'd Asterisk.
        # The host's /etc/hosts lets Asterisk resolve this machine's own name.
        script = (
            f"mount --bind {_q(instance_dir)} {_q(mount)} && "
            f"mount -t proc proc {_q(self.root / 'proc')} && "
            f"{{ [ ! -f /etc/hosts ] || "
            f"mount --bind /etc/hosts {_q(self.root / 'etc/hosts')}; }} && "
            f"exec chroot {_q(self.root)} {self.binary} -C {_q(conf)} "
            + " ".join(_q(a) for a in args)
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _q(value: object) -> str:
    s = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:=@%+-]+", s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


def container_runtime() -> AsteriskRuntime:
    """Asterisk in a container that mounts the instance directory at /srv/hotline (the
    docker-compose deployment): rendering needs only the paths, not a binary here."""
    return AsteriskRuntime(version=CONTAINER_VERSION, binary="/usr/sbin/asterisk",
                           root=Path("/nonexistent-container-root"))


def _version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run([*argv, "-V"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Asterisk (\d+)\.(\S+)", out)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def installed_runtime() -> AsteriskRuntime | None:
    binary = shutil.which("asterisk")
    if binary is None:
        return None
    version = _version_of([binary])
    if version is None or int(version.split(".")[0]) < MIN_VERSION:
        log.info("installed asterisk is too old or unusable", extra={"version": version})
        return None
    return AsteriskRuntime(version=version, binary=binary)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (the only network these machines have)."""
    if os.environ.get("HOTLINE_DEBIAN_MIRROR"):
        return os.environ["HOTLINE_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(https?://\S+)", text):
            uri = m.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


class _Progress:
    """Turns debootstrap's output into one updating progress line on stderr."""

    STAGES = (
        ("Retrieving", "downloading"),
        ("Validating", "checking"),
        ("Extracting", "extracting"),
        ("Unpacking", "unpacking"),
        ("Configuring", "configuring"),
    )

    def __init__(self, report: Callable[[str], None]):
        self.report = report
        self.started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.stage = "resolving packages"
        self.total = 0
        self.last = 0.0

    def line(self, text: str) -> None:
        m = re.match(r"I: Found additional (?:base )?dependencies: (.*)", text)
        if m:
            self.total += len(m.group(1).split())
        m = re.match(r"I: Found (?:additional )?required packages?: (.*)", text)
        if m:
            self.total += len(m.group(1).split())
        for prefix, stage in self.STAGES:
            if text.startswith(f"I: {prefix} "):
                self.stage = stage
                self.counts[stage] = self.counts.get(stage, 0) + 1
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            n = self.counts.get(self.stage, 0)
            of = f"/{self.total}" if self.total and n <= self.total else ""
            self.report(f"{self.stage} {n}{of} packages ({now - self.started:.0f} s)")


def _default_report(msg: str) -> None:
    print(f"[asterisk-runtime] {msg}", file=sys.stderr, flush=True)


def build_chroot(root: Path, report: Callable[[str], None] = _default_report) -> None:
    """debootstrap a Debian sid root with Asterisk into ``root`` (atomically)."""
    if shutil.which("debootstrap") is None:
        raise AsteriskRuntimeError(
            "debootstrap is not installed and no Asterisk >= 20 is: "
            "run `apt-get install debootstrap` (or `make bootstrap`)"
        )
    if os.geteuid() != 0:
        raise AsteriskRuntimeError("building the Asterisk root needs root (debootstrap and chroot)")
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    mirror = debian_mirror()
    report(f"building a Debian sid root with Asterisk from {mirror} (about a minute, once)")
    argv = [
        "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
        "sid", str(tmp), mirror,
    ]
    progress = _Progress(report)
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for raw in p.stdout:
            text = raw.rstrip()
            tail = [*tail[-30:], text]
            progress.line(text)
        rc = p.wait()
    if rc != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AsteriskRuntimeError(
            f"debootstrap failed (exit {rc}); its last lines:\n  " + "\n  ".join(tail[-12:])
        )
    # Asterisk's packaged directories belong to the root's own asterisk user, whose uid means
    # someone else on the host. Asterisk uses none of them (each instance has its own
    # directories, handed to that user at start: instance.py), so root keeps them.
    for d in ("etc/asterisk", "var/lib/asterisk", "var/spool/asterisk", "var/log/asterisk",
              "var/run/asterisk", "var/cache/asterisk"):
        path = tmp / d
        if path.exists():
            subprocess.run(["chown", "-R", "root:root", str(path)], check=True)
    (tmp / CHROOT_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (tmp / "etc/hosts").touch()  # mount point for the host's /etc/hosts
    shutil.rmtree(tmp / "var/cache/apt/archives", ignore_errors=True)
    version = _version_of(["chroot", str(tmp), "/usr/sbin/asterisk"])
    if version is None:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AsteriskRuntimeError("the built root has no working asterisk binary")
    (tmp / ".hotline-runtime.json").write_text(json.dumps({
        "format": RUNTIME_FORMAT, "version": version, "mirror": mirror,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - progress.started, 1),
    }))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    report(f"Asterisk {version} ready in {time.monotonic() - progress.started:.0f} s at {root}")


def _chroot_runtime(root: Path) -> AsteriskRuntime | None:
    try:
        stamp = json.loads((root / ".hotline-runtime.json").read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("format") != RUNTIME_FORMAT:
        return None
    return AsteriskRuntime(version=stamp["version"], binary="/usr/sbin/asterisk", root=root)


def ensure_runtime(
    *, prefer: str = "auto", report: Callable[[str], None] = _default_report
) -> AsteriskRuntime:
    """An installed Asterisk >= 20 if there is one, else the cached sid root (built if missing).

    ``prefer`` ("auto", "installed", "chroot") comes from HOTLINE_ASTERISK when set.
    """
    prefer = os.environ.get("HOTLINE_ASTERISK", prefer)
    if prefer in ("auto", "installed"):
        rt = installed_runtime()
        if rt is not None:
            return rt
        if prefer == "installed":
            raise AsteriskRuntimeError(
                "HOTLINE_ASTERISK=installed but no Asterisk >= 20 is installed"
            )
    root = cache_dir() / "asterisk-sid"
    rt = _chroot_runtime(root)
    if rt is not None:
        return rt
    root.parent.mkdir(parents=True, exist_ok=True)
    # Two builds at once (CI beside a demo) would trample each other: one builds, one waits.
    with open(root.parent / "asterisk-sid.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report("another process is building the Asterisk root; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        rt = _chroot_runtime(root)
        if rt is None:
            build_chroot(root, report)
            rt = _chroot_runtime(root)
    if rt is None:
        raise AsteriskRuntimeError(f"the Asterisk root at {root} is unusable; delete it and retry")
    return rt
