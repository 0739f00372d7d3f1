"""Callers' numbers are personal data: encrypted at rest, looked up by a keyed hash, masked in
the UI for roles that don't need them, and never written to logs in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def mask_number(number: str | None) -> str:
    """138****5678 style: enough to recognise a call, not enough to call back."""
    if not number:
        return ""
    digits = str(number)
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) <= 7:
        return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


_NUMBERISH = re.compile(r"(?<![0-9])\+?[0-9]{7,}(?![0-9])")


def scrub(text: str) -> str:
    """Mask anything in free text that looks like a phone number."""
    return _NUMBERISH.sub(lambda m: mask_number(m.group(0)), text)


def _keys(data_key: str) -> tuple[Fernet, bytes]:
    root = hashlib.sha256(b"hotline-data-key|" + data_key.encode()).digest()
    fernet = Fernet(base64.urlsafe_b64encode(hmac.new(root, b"encrypt", hashlib.sha256).digest()))
    return fernet, hmac.new(root, b"lookup", hashlib.sha256).digest()


class PersonalData:
    """Encrypts personal fields with a key derived from the environment's data key.

    Every personal field (callers' numbers and names, what agents write on a case, transcripts,
    callback notes) goes through ``encrypt``/``decrypt`` (Fernet: AES-128-CBC + HMAC-SHA256,
    a fresh IV per value, so equal values give different tokens). Look-ups use
    ``lookup_hash``, a keyed HMAC of the normalised number. ``previous`` keys still decrypt
    (key rotation: ``hotline privacy rekey`` re-encrypts everything with the current key)."""

    def __init__(self, data_key: str, previous: Sequence[str] = ()):
        if len(data_key) < 12:
            raise ValueError("the data key must have at least 12 characters")
        self._current, self._lookup = _keys(data_key)
        self._old = [_keys(k) for k in previous if k and k != data_key]
        self._fernet = MultiFernet([self._current, *(f for f, _ in self._old)])

    def encrypt(self, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return self._current.encrypt(value.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        if not token:
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("personal data cannot be decrypted: wrong data key?") from None

    def decrypt_text(self, token: str | None) -> str:
        """A personal text field for display: "" when empty."""
        return self.decrypt(token) or ""

    def reencrypt(self, token: str | None) -> str | None:
        """The same value under the current key (key rotation)."""
        if not token:
            return token
        return self.encrypt(self.decrypt(token))

    def lookup_hash(self, value: str | None) -> str | None:
        """Equal numbers give equal hashes (for repeat-caller look-ups); the hash reveals nothing
        without the key."""
        if not value:
            return None
        return hmac.new(self._lookup, normalize_number(value).encode(),
                        hashlib.sha256).hexdigest()[:40]


def normalize_number(number: str) -> str:
    """Compare numbers the way a person would: drop formatting and the +86 / 0086 prefix."""
    digits = re.sub(r"[^0-9]", "", number)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 10:
            digits = digits[len(prefix):]
            break
    return digits
