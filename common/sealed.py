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

A file uploaded in pieces (the sign-language seat's video) is written one chunk per piece
(``append_chunk``: piece i is chunk i, so a retried piece is found and not written twice) and
finished with an empty last chunk (``finish``). Until then it reads only with
``unfinished_ok``: a crash leaves every piece before it readable.
"""

from __future__ import annotations

import fcntl
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


def open_chunks(f: BinaryIO, keys: KeyWrapper, *, unfinished_ok: bool = False
                ) -> Iterator[bytes]:
    """The clear content of a sealed stream, chunk by chunk (each one checked).
    ``unfinished_ok``: a file whose writer has not finished it (``append_chunk``) ends after
    its last whole chunk instead of being an error."""
    try:
        key = keys.unwrap_key(_header(f))
    except ValueError as exc:
        raise SealedFileError(str(exc)) from None
    aead = AESGCM(key)
    index = 0
    while True:
        size = f.read(4)
        (n,) = struct.unpack(">I", size) if len(size) == 4 else (-1,)
        sealed = f.read(max(n, 0))
        if n < 0 or len(sealed) != n:
            if unfinished_ok and index:
                return
            raise SealedFileError("sealed file cut short (no last chunk)" if n < 0 else
                                  "sealed file cut short in a chunk")
        last = _at_end(f)
        try:
            yield aead.decrypt(_nonce(index, last), sealed, MAGIC)
        except InvalidTag:
            if not (last and unfinished_ok):
                raise SealedFileError(f"sealed file damaged or reordered at chunk {index}"
                                      ) from None
            try:
                yield aead.decrypt(_nonce(index, False), sealed, MAGIC)
            except InvalidTag:
                raise SealedFileError(f"sealed file damaged at chunk {index}") from None
        if last:
            return
        index += 1


def _at_end(f: BinaryIO) -> bool:
    here = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(here)
    return here == end


def read_chunks(path: Path, keys: KeyWrapper, *, unfinished_ok: bool = False
                ) -> Generator[bytes, None, None]:
    """The clear content of a sealed file, chunk by chunk."""
    with open(path, "rb") as f:
        yield from open_chunks(f, keys, unfinished_ok=unfinished_ok)


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


# -- files uploaded in pieces ------------------------------------------------------------------

_EMPTY = 16  # an empty chunk sealed: the GCM tag alone (the end of a finished file)


def _scan(f: BinaryIO) -> tuple[bytes, int, int, bool]:
    """An appended file's wrapped key, whole chunks, where they end, and whether it is
    finished (its last chunk the empty end)."""
    f.seek(0)
    wrapped = _header(f)
    size = f.seek(0, os.SEEK_END)
    pos, count, last_n = len(MAGIC) + 2 + len(wrapped), 0, -1
    while pos + 4 <= size:
        f.seek(pos)
        (n,) = struct.unpack(">I", f.read(4))
        if pos + 4 + n > size:
            break
        pos, count, last_n = pos + 4 + n, count + 1, n
    return wrapped, count, pos, last_n == _EMPTY


def _put(f: BinaryIO, end: int, keys: KeyWrapper, wrapped: bytes, index: int, data: bytes,
         *, last: bool) -> None:
    """Write chunk ``index`` at ``end`` (what follows is cut off), synced."""
    try:
        aead = AESGCM(keys.unwrap_key(wrapped))
    except ValueError as exc:
        raise SealedFileError(str(exc)) from None
    sealed = aead.encrypt(_nonce(index, last), data, MAGIC)
    f.seek(end)
    f.truncate()
    f.write(struct.pack(">I", len(sealed)) + sealed)
    f.flush()
    os.fsync(f.fileno())


def append_chunk(path: Path, data: bytes, keys: KeyWrapper, index: int) -> bool:
    """Write ``data`` (not empty) as chunk ``index`` of a file uploaded in pieces; chunk 0
    creates the file (mode 0600). True if written, False if the file already holds that chunk
    (a retry: stored once). A chunk after a missing one, or one for a finished file, raises
    ``SealedFileError``. What an interrupted write left after the last whole chunk is cut off
    first; each chunk is synced before this returns."""
    if not data:
        raise SealedFileError("an empty piece")
    if index == 0:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fo:
                fcntl.flock(fo, fcntl.LOCK_EX)
                wrapped = keys.wrap_key(AESGCM.generate_key(bit_length=256))
                fo.write(MAGIC + struct.pack(">H", len(wrapped)) + wrapped)
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        raise SealedFileError(f"piece {index} before piece 0") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        wrapped, count, end, finished = _scan(f)
        if finished:
            raise SealedFileError("the file is finished")
        if index < count:
            return False
        if index > count:
            raise SealedFileError(f"piece {index} after {count} pieces: piece {count} is "
                                  f"missing")
        _put(f, end, keys, wrapped, index, data, last=False)
    return True


def pieces(path: Path) -> tuple[int, bool]:
    """How many pieces a file uploaded in pieces holds, and whether it is finished."""
    with open(path, "rb") as f:
        _, count, _, finished = _scan(f)
    return count - finished, finished


def finish(path: Path, keys: KeyWrapper) -> int:
    """End a file uploaded in pieces (its empty last chunk; again: nothing more); returns how
    many pieces it holds."""
    with open(path, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        wrapped, count, end, finished = _scan(f)
        if finished:
            return count - 1
        _put(f, end, keys, wrapped, count, b"", last=True)
    return count
