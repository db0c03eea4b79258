"""Cursors of segment member pages: the version, the segment and the last id of the page.

A cursor pins its pages to one version of the store, so an activation tool paging through a
segment while a new version is loaded gets every page from the version it started with (until
that version expires: ``SEGWH_ONLINE_GRACE_SECONDS`` after it was replaced). Cursors are
signed (HMAC, key derived from the pseudonymization key) so a client cannot forge one naming
arbitrary keys; they are opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import orjson

_SIGNATURE_BYTES = 16


class InvalidCursor(ValueError):
    pass


class CursorCodec:
    def __init__(self, secret: bytes):
        self._key = hmac.new(secret, b"segwh api member cursor", hashlib.sha256).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, version: str, segment: str, after: str) -> str:
        payload = orjson.dumps([version, segment, after])
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(self, cursor: str, segment: str) -> tuple[str, str]:
        """(version, last id) of a cursor made by ``encode`` for ``segment``."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor("the cursor is not one this API returned") from None
        signature, payload = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidCursor("the cursor is not one this API returned")
        version, cursor_segment, after = orjson.loads(payload)
        if cursor_segment != segment:
            raise InvalidCursor("the cursor belongs to another segment")
        return version, after
