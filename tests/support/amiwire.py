"""The AMI reader on its own, fed bytes by hand (a unit test of the framing, not a fake
Asterisk): a protocol object whose client only collects what it was given."""

from __future__ import annotations

from typing import Any

from telephony.ami import BufferedAMIProtocol

EOM = b"\r\n\r\n"  # the blank line that ends an AMI message

NEWCHANNEL = (
    "Event: Newchannel\r\nChannel: PJSIP/trunk-nanjing-00000001\r\nChannelStateDesc: Ring\r\n"
    "CallerIDNum: 13812345678\r\nCallerIDName: 张三丰（市民）\r\nContext: from-carrier\r\n"
    "Exten: 12345\r\nUniqueid: node1-1.1\r\nLinkedid: node1-1.1\r\n\r\n"
).encode()


class SilentTransport:
    """A transport that takes everything and sends nothing anywhere."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class MessageCollector:
    """Stands where the AmiClient sits: keeps the messages and the malformed samples."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.malformed: list[str] = []

    def enqueue(self, message: Any) -> None:
        self.events.append(message)

    def note_malformed(self, sample: str) -> None:
        self.malformed.append(sample)


def protocol() -> tuple[BufferedAMIProtocol, MessageCollector]:
    """A connected reader and what it hands to its client."""
    p = BufferedAMIProtocol()
    p.connection_made(SilentTransport())  # type: ignore[arg-type]  # only write/close/abort used
    c = MessageCollector()
    p.client = c  # type: ignore[assignment]  # the reader calls only enqueue/note_malformed
    p.encoding = "utf-8"
    return p, c
