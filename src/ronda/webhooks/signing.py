"""What makes a delivery verifiable: the exact body, its HMAC signature, and the secret kept at rest.

A hook's secret has to be recoverable (we sign with it on every delivery), so it cannot be hashed
like an API key. It is stored encrypted with AES-GCM under a key derived from RONDA_SECRET_KEY: a
copy of the database alone does not reveal it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ronda.core.timeutil import iso

SIGNATURE_HEADER = "X-Ronda-Signature"
EVENT_HEADER = "X-Ronda-Event"
DELIVERY_HEADER = "X-Ronda-Delivery"
SECRET_PREFIX = "whsec_"
ENVELOPE_VERSION = "v1"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def sign(secret: str, body: bytes) -> str:
    """The X-Ronda-Signature value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (used by the tests): a constant-time compare."""
    return hmac.compare_digest(sign(secret, body), header)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def render_body(event_id: str, event_type: str, occurred_at: datetime, tenant_id: str, data: dict[str, Any]) -> bytes:
    """The delivery body, rendered once; retries send (and sign) these very bytes."""
    envelope = {"id": event_id, "event": event_type, "timestamp": iso(occurred_at), "tenant_id": tenant_id,
                "data": data}
    return orjson.dumps(envelope, default=_default, option=orjson.OPT_NON_STR_KEYS)


class SecretError(Exception):
    """A stored secret cannot be decrypted (RONDA_SECRET_KEY changed, or the value was altered)."""


class SecretBox:
    """Encrypts hook secrets for storage; the key is derived from the server's signing key."""

    def __init__(self, server_key: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ronda webhook secrets v1")
        self._aead = AESGCM(hkdf.derive(server_key.encode()))

    def seal(self, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), ENVELOPE_VERSION.encode())
        return ENVELOPE_VERSION + "." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str) -> str:
        version, _, blob = stored.partition(".")
        if version != ENVELOPE_VERSION:
            raise SecretError("unknown secret envelope")
        try:
            raw = base64.urlsafe_b64decode(blob.encode())
            return self._aead.decrypt(raw[:12], raw[12:], ENVELOPE_VERSION.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretError("the webhook secret cannot be decrypted with this server's key") from exc
