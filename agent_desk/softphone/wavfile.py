"""Is a WAV file finished? pjmedia's WAV writer writes a header with zero sizes when the
recorder starts and fills them in only when the recorder is destroyed; a file whose sizes do
not match its length is still being written (or its writer died)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

# The chunks before the audio (RIFF, fmt, maybe fact/LIST) fit in this.
HEADER_READ = 4096


def wav_complete(path: Path) -> bool:
    """True if ``path`` is a RIFF/WAVE file whose RIFF size is its length and whose data chunk
    ends at the end of the file (only the header is read: cheap enough to poll)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_READ)
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    if int(struct.unpack_from("<I", head, 4)[0]) != size - 8:
        return False
    pos = 12
    while pos + 8 <= len(head):
        chunk_size = int(struct.unpack_from("<I", head, pos + 4)[0])
        if head[pos:pos + 4] == b"data":
            return pos + 8 + chunk_size == size
        pos += 8 + chunk_size + (chunk_size & 1)
    return False
