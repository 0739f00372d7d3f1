"""Callers' numbers are personal data: encrypted at rest, looked up by a keyed hash, masked in
the UI for roles that don't need them, and never written to logs in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from common.secrets import DATA_ENCRYPT, DATA_LOOKUP, DATA_TERMS, derive_key


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


# Numbers as people say and write them: ASCII and full-width digits, Chinese numerals (幺 is
# how 一 is read out in numbers), in groups split by spaces or dashes ("138 1234 5678",
# "138-1234-5678", "一三八 一二三四 五六七八").
_DIGITS = "0123456789０１２３４５６７８９〇零一二三四五六七八九幺"
_TO_ASCII = str.maketrans(_DIGITS, "01234567890123456789" + "00123456789" + "1")
_D = f"[{_DIGITS}]"
_SEP = r"(?:[ \u3000]*[-－‐‑–—][ \u3000]*|[ \u3000]+)"
_NUMBERISH = re.compile(rf"(?<!{_D})(?<![0-9]\.)(?:[+＋][ \u3000]?)?{_D}(?:{_SEP}?{_D})*")
_SEP_RE = re.compile(_SEP)
# Dates are not numbers to hide: 2026-12-06, 2026/12/06, 2026.12.06.
_DATE = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2}([-/.])(?:0?[1-9]|1[0-2])\1"
                   r"(?:0?[1-9]|[12][0-9]|3[01])(?![0-9])")
# A figure with a currency, a unit or cents is an amount, not a number to hide. (Thousands
# separators need no rule: no group between them is long enough to be masked.)
_AMOUNT_AFTER = re.compile(r"[ \u3000]?(?:[元块圆角万亿千百%％]|\.[0-9]{1,2}(?![0-9]))")
_AMOUNT_BEFORE = ("¥", "￥", "$", "＄")
# What a phone number looks like once written as digits (after an optional 86 / 0086): a
# mobile, a landline with its area code, a local 7-8 digit landline, a 400/800 line.
_PHONE = re.compile(r"1[3-9][0-9]{9}|0[1-9][0-9]{8,10}|[2-9][0-9]{6,7}|[48]00[0-9]{7}")
_MIN_DIGITS = 7


def _masked(text: str, m: re.Match[str], *, partial: bool) -> str:
    raw = m.group(0)
    if _AMOUNT_AFTER.match(text, m.end()) or text[:m.start()].rstrip(" \u3000").endswith(
            _AMOUNT_BEFORE):
        return raw
    plus = raw[0] in "+＋"
    groups = _SEP_RE.split(raw.lstrip("+＋ \u3000"))
    digits = "".join(groups).translate(_TO_ASCII)
    if partial and m.end() == len(text) and len(digits) >= 3:
        # Perhaps the start of a number still being said: hide its digits until it is whole
        # (each partial caption masked its own way would give the number away piece by piece).
        return "*" * len(digits)
    if len(digits) < _MIN_DIGITS:
        return raw
    # Digits split by spaces or dashes are one number only if they make a phone number
    # ("12345 110" are two short numbers, "138 1234 5678" is one).
    if len(groups) > 1 and not _PHONE.fullmatch(normalize_number(digits)):
        return raw
    return mask_number(("+" if plus else "") + digits)


def scrub(text: str, *, partial: bool = False) -> str:
    """Mask anything in free text that looks like a phone number, however it is written:
    digits, full-width digits or Chinese numerals, in groups split by spaces or dashes.
    Short numbers (12345, 110), dates and amounts stay. ``partial``: the text is a live
    caption still growing, so a number at its end is hidden whole until it is complete."""
    out: list[str] = []
    last = 0
    for d in _DATE.finditer(text):
        out.append(_scrub_piece(text[last:d.start()], partial=False))
        out.append(d.group(0))
        last = d.end()
    out.append(_scrub_piece(text[last:], partial=partial))
    return "".join(out)


def _scrub_piece(text: str, *, partial: bool) -> str:
    return _NUMBERISH.sub(lambda m: _masked(text, m, partial=partial), text)


def _keys(data_key: str) -> tuple[Fernet, bytes]:
    """The encryption and look-up keys: HKDF-SHA256 of the data key, one label each."""
    fernet = Fernet(base64.urlsafe_b64encode(derive_key(data_key, DATA_ENCRYPT)))
    return fernet, derive_key(data_key, DATA_LOOKUP)


def _legacy_keys(data_key: str) -> tuple[Fernet, bytes]:
    """How keys were derived before HKDF (one SHA-256 of the key): decryption only, for values
    written before; `hotline privacy rekey` re-encrypts them, migration 0010_secrets
    recomputes the look-up hashes."""
    root = hashlib.sha256(b"hotline-data-key|" + data_key.encode()).digest()
    fernet = Fernet(base64.urlsafe_b64encode(hmac.new(root, b"encrypt", hashlib.sha256).digest()))
    return fernet, hmac.new(root, b"lookup", hashlib.sha256).digest()


class PersonalData:
    """Encrypts personal fields with keys derived from the environment's data key.

    Every personal field (callers' numbers and names, what agents write on a case, transcripts,
    callback notes) goes through ``encrypt``/``decrypt`` (Fernet: AES-128-CBC + HMAC-SHA256,
    a fresh IV per value, so equal values give different tokens). Look-ups use
    ``lookup_hash``, a keyed HMAC of the normalised number. Both keys come from the data key
    through HKDF-SHA256 with a label each (common/secrets.py). ``previous`` keys, and every
    key as derived before HKDF, still decrypt (``hotline privacy rekey`` re-encrypts
    everything with the current key) but never encrypt."""

    def __init__(self, data_key: str, previous: Sequence[str] = ()):
        if len(data_key) < 12:
            raise ValueError("the data key must have at least 12 characters")
        self._current, self._lookup = _keys(data_key)
        self._legacy_lookup = _legacy_keys(data_key)[1]
        self._terms = derive_key(data_key, DATA_TERMS)
        older = [k for k in previous if k and k != data_key]
        self._fernet = MultiFernet([self._current, _legacy_keys(data_key)[0],
                                    *(f for k in older for f in (_keys(k)[0],
                                                                 _legacy_keys(k)[0]))])

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

    def wrap_key(self, key: bytes) -> bytes:
        """A file's own key, encrypted under the data key (sealed recordings: common/sealed.py)."""
        return self._current.encrypt(key)

    def unwrap_key(self, wrapped: bytes) -> bytes:
        try:
            return self._fernet.decrypt(wrapped)
        except InvalidToken:
            raise ValueError("a file key cannot be unwrapped: wrong data key?") from None

    def lookup_hash(self, value: str | None) -> str | None:
        """Equal numbers give equal hashes (for repeat-caller look-ups); the hash reveals nothing
        without the key."""
        if not value:
            return None
        return _hash(self._lookup, value)

    def text_hash(self, value: str | None) -> str | None:
        """Equal texts (already normalised by the caller, e.g. an address) give equal hashes;
        unlike ``lookup_hash`` the text is not read as a phone number. Domain-separated from
        the numbers' hashes."""
        if not value:
            return None
        return hmac.new(self._lookup, b"text|" + value.encode(), hashlib.sha256
                        ).hexdigest()[:40]

    def term_hash(self, word: str) -> str:
        """A word of free text as a keyed hash (hot-topic counts, the classifier's features):
        equal words give equal hashes, and the hash says nothing of the word without the key.
        Not kept across a change of the data key (counts and features start again)."""
        return hmac.new(self._terms, word.encode(), hashlib.sha256).hexdigest()[:16]

    def legacy_lookup_hash(self, value: str | None) -> str | None:
        """The look-up hash as computed before HKDF (migration 0010_secrets' downgrade)."""
        if not value:
            return None
        return _hash(self._legacy_lookup, value)


def _hash(key: bytes, number: str) -> str:
    return hmac.new(key, normalize_number(number).encode(), hashlib.sha256).hexdigest()[:40]


def normalize_number(number: str) -> str:
    """Compare numbers the way a person would: drop formatting and the +86 / 0086 prefix."""
    digits = re.sub(r"[^0-9]", "", number)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 10:
            digits = digits[len(prefix):]
            break
    return digits
