"""Files of personal data at rest (call recordings): each file has its own random key, wrapped by
the data key, and its content is encrypted in chunks so it can be written and read as a stream.

Layout of a sealed file::

    b"HLSEAL1\\n"                      magic and version
    u16 big-endian n, n bytes         the file key (32 random bytes) wrapped by the data key
                                      (``PersonalData.wrap_key``: Fernet, so it is authenticated)
    then chunks: u32 big-endian n, n bytes of AES-256-GCM output (plaintext <= CHUNK + 16 tag)

Chunk i is sealed with nonce = i as 11 bytes big-endian + 1 byte "last chunk" flag (0 or 1), and
the magic as associated data (the STREAM construction): chunks cannot be reordered, dropped or
the file cut short without the reader noticing. A fresh key per file makes counter nonces safe.
Data key rotation rewraps only the header (``rewrap``); the chunks stay as they are.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"HLSEAL1\n"
CHUNK = 64 * 1024
SUFFIX = ".enc"


class SealedFileError(Exception):
    """Not a sealed file, damaged, cut short, or sealed under a key we do not have."""


class KeyWrapper(Protocol):
    """What sealing needs from the data key (``common.privacy.PersonalData``)."""

    def wrap_key(self, key: bytes) -> bytes: ...

    def unwrap_key(self, wrapped: bytes) -> bytes: ...


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal_stream(src: BinaryIO, dst: BinaryIO, keys: KeyWrapper) -> int:
    """Encrypt everything ``src`` holds into ``dst``; returns the clear length."""
    key = AESGCM.generate_key(bit_length=256)
    wrapped = keys.wrap_key(key)
    dst.write(MAGIC + struct.pack(">H", len(wrapped)) + wrapped)
    aead = AESGCM(key)
    total, index = 0, 0
    chunk = src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if chunk else b""
        last = not following
        sealed = aead.encrypt(_nonce(index, last), chunk, MAGIC)
        dst.write(struct.pack(">I", len(sealed)) + sealed)
        total += len(chunk)
        if last:
            return total
        chunk, index = following, index + 1


def seal_file(src: Path, dst: Path, keys: KeyWrapper) -> int:
    """Write ``src`` sealed to ``dst`` (mode 0600, through a temporary name, synced); returns
    the clear length. ``src`` is left as it is."""
    tmp = dst.with_name(dst.name + ".part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(src, "rb") as fi, os.fdopen(fd, "wb") as fo:
            size = seal_stream(fi, fo, keys)
            fo.flush()
            os.fsync(fo.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _header(f: BinaryIO) -> bytes:
    head = f.read(len(MAGIC) + 2)
    if len(head) < len(MAGIC) + 2 or head[: len(MAGIC)] != MAGIC:
        raise SealedFileError("not a sealed file")
    (n,) = struct.unpack(">H", head[len(MAGIC):])
    wrapped = f.read(n)
    if len(wrapped) != n:
        raise SealedFileError("sealed file cut short in its header")
    return wrapped


def open_chunks(f: BinaryIO, keys: KeyWrapper) -> Iterator[bytes]:
    """The clear content of a sealed stream, chunk by chunk (each one checked)."""
    try:
        key = keys.unwrap_key(_header(f))
    except ValueError as exc:
        raise SealedFileError(str(exc)) from None
    aead = AESGCM(key)
    index = 0
    while True:
        size = f.read(4)
        if len(size) < 4:
            raise SealedFileError("sealed file cut short (no last chunk)")
        (n,) = struct.unpack(">I", size)
        sealed = f.read(n)
        if len(sealed) != n:
            raise SealedFileError("sealed file cut short in a chunk")
        last = _at_end(f)
        try:
            yield aead.decrypt(_nonce(index, last), sealed, MAGIC)
        except InvalidTag:
            raise SealedFileError(f"sealed file damaged or reordered at chunk {index}") from None
        if last:
            return
        index += 1


def _at_end(f: BinaryIO) -> bool:
    here = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(here)
    return here == end


def read_chunks(path: Path, keys: KeyWrapper) -> Generator[bytes, None, None]:
    """The clear content of a sealed file, chunk by chunk."""
    with open(path, "rb") as f:
        yield from open_chunks(f, keys)


def read_all(path: Path, keys: KeyWrapper) -> bytes:
    """The whole clear content of a sealed file (in memory: never written out in clear)."""
    return b"".join(read_chunks(path, keys))


def rewrap(path: Path, keys: KeyWrapper) -> None:
    """Wrap the file's key under the current data key (key rotation; safe to repeat). Only the
    header changes; the file is rewritten through a temporary copy."""
    with open(path, "rb") as f:
        wrapped = _header(f)
        try:
            rewrapped = keys.wrap_key(keys.unwrap_key(wrapped))
        except ValueError as exc:
            raise SealedFileError(str(exc)) from None
        tmp = path.with_name(path.name + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fo:
            fo.write(MAGIC + struct.pack(">H", len(rewrapped)) + rewrapped)
            while block := f.read(1 << 20):
                fo.write(block)
            fo.flush()
            os.fsync(fo.fileno())
    os.replace(tmp, path)
