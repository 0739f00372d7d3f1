"""Sealed files (recordings at rest): a key per file wrapped by the data key, AES-GCM chunks that
cannot be cut, reordered or opened under another key."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from common import sealed
from common.privacy import PersonalData

KEY = "k" * 16 + "0123456789abcdef-data-key"


@pytest.mark.parametrize("size", [0, 1, sealed.CHUNK - 1, sealed.CHUNK, 3 * sealed.CHUNK + 7])
def test_sealed_file_opens_to_the_same_bytes_and_shows_none_of_them(tmp_path: Path, size: int):
    clear = b"RIFF" + os.urandom(max(0, size - 4)) if size >= 4 else os.urandom(size)
    src, dst = tmp_path / "a.wav", tmp_path / "a.wav.enc"
    src.write_bytes(clear)
    keys = PersonalData(KEY)
    assert sealed.seal_file(src, dst, keys) == size
    data = dst.read_bytes()
    assert data.startswith(sealed.MAGIC) and b"RIFF" not in data
    assert oct(dst.stat().st_mode & 0o777) == "0o600"
    assert sealed.read_all(dst, keys) == clear


def test_each_file_has_its_own_key(tmp_path: Path):
    keys = PersonalData(KEY)
    src = tmp_path / "a.wav"
    src.write_bytes(b"same audio" * 1000)
    sealed.seal_file(src, tmp_path / "1.enc", keys)
    sealed.seal_file(src, tmp_path / "2.enc", keys)
    assert (tmp_path / "1.enc").read_bytes() != (tmp_path / "2.enc").read_bytes()


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    n = struct.unpack(">H", data[len(sealed.MAGIC):len(sealed.MAGIC) + 2])[0]
    pos = len(sealed.MAGIC) + 2 + n
    head, out = data[:pos], []
    while pos < len(data):
        (m,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(data[pos:pos + 4 + m])
        pos += 4 + m
    return head, out


def test_cut_reordered_or_altered_files_and_other_keys_are_refused(tmp_path: Path):
    keys = PersonalData(KEY)
    src, dst = tmp_path / "a.wav", tmp_path / "a.enc"
    src.write_bytes(os.urandom(3 * sealed.CHUNK))
    sealed.seal_file(src, dst, keys)
    head, chunks = _chunks(dst.read_bytes())
    assert len(chunks) == 3
    bad = tmp_path / "bad.enc"
    for variant in (head + chunks[0] + chunks[1],  # cut at a chunk boundary
                    head + chunks[1] + chunks[0] + chunks[2],  # reordered
                    head + chunks[0] + chunks[1] + chunks[2][:-1] + b"x"):  # altered
        bad.write_bytes(variant)
        with pytest.raises(sealed.SealedFileError):
            sealed.read_all(bad, keys)
    with pytest.raises(sealed.SealedFileError):
        sealed.read_all(dst, PersonalData("another-" + KEY))
    with pytest.raises(sealed.SealedFileError):
        sealed.read_all(src, keys)  # a clear file is not taken for a sealed one


def test_rewrap_moves_the_file_key_to_the_new_data_key(tmp_path: Path):
    old = PersonalData(KEY)
    src, dst = tmp_path / "a.wav", tmp_path / "a.enc"
    src.write_bytes(b"audio" * 50000)
    sealed.seal_file(src, dst, old)
    new = "new-" + KEY
    sealed.rewrap(dst, PersonalData(new, previous=[KEY]))
    assert sealed.read_all(dst, PersonalData(new)) == src.read_bytes()


def test_a_file_uploaded_in_pieces_stores_each_piece_once_and_in_order(tmp_path: Path):
    """The seat's video: piece i is chunk i; a retry is not stored again, a gap is refused,
    a crash mid-write loses only that piece, and the finished file reads strictly."""
    keys, path = PersonalData(KEY), tmp_path / "v.webm.enc"
    webm = [b"\x1a\x45\xdf\xa3" + os.urandom(500), os.urandom(70_000), os.urandom(9)]
    with pytest.raises(sealed.SealedFileError, match="before piece 0"):
        sealed.append_chunk(path, webm[1], keys, 1)
    assert sealed.append_chunk(path, webm[0], keys, 0) is True
    assert sealed.append_chunk(path, webm[0], keys, 0) is False  # the retry: stored once
    with pytest.raises(sealed.SealedFileError, match="piece 1 is missing"):
        sealed.append_chunk(path, webm[2], keys, 2)
    assert sealed.append_chunk(path, webm[1], keys, 1) is True
    assert sealed.pieces(path) == (2, False)
    # Unfinished: readable only when asked for, up to the last whole piece.
    with pytest.raises(sealed.SealedFileError):
        sealed.read_all(path, keys)
    assert b"".join(sealed.read_chunks(path, keys, unfinished_ok=True)) == webm[0] + webm[1]
    # A write cut by a crash: cut off, the piece written again.
    with open(path, "ab") as f:
        f.write(struct.pack(">I", 1000) + b"half")
    assert b"".join(sealed.read_chunks(path, keys, unfinished_ok=True)) == webm[0] + webm[1]
    assert sealed.append_chunk(path, webm[2], keys, 2) is True
    assert sealed.finish(path, keys) == 3 and sealed.finish(path, keys) == 3
    assert sealed.pieces(path) == (3, True)
    with pytest.raises(sealed.SealedFileError, match="finished"):
        sealed.append_chunk(path, webm[2], keys, 3)
    data = path.read_bytes()
    assert b"\x1a\x45\xdf\xa3" not in data and oct(path.stat().st_mode & 0o777) == "0o600"
    assert sealed.read_all(path, keys) == b"".join(webm)
    # Cut at a piece's end, a finished file is refused like any other.
    path.write_bytes(data[:-(4 + 16)])
    with pytest.raises(sealed.SealedFileError):
        sealed.read_all(path, keys)
