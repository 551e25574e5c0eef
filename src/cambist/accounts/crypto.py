"""Keys derived from the one configured ``secret_key``, and sealing of API-key secrets.

Each use gets its own key through HKDF with a distinct label, so the JWT signing key and the
encryption key never coincide (a leak or misuse of one does not give the other).
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_KEY_LENGTH_MIN = 16

_SEALED_VERSION = b"\x01"  # lets a later key rotation tell old ciphertexts apart
_NONCE_BYTES = 12


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose, e.g. ``"jwt-access/v1"``."""
    if len(secret_key) < SECRET_KEY_LENGTH_MIN:
        raise ValueError(f"secret_key must have at least {SECRET_KEY_LENGTH_MIN} characters")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"cambist/{purpose}".encode(),
    )
    return hkdf.derive(secret_key.encode())


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SecretBox:
    """AES-256-GCM with a random nonce per message; ``context`` is bound as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _SEALED_VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """Raise ``ValueError`` if the data was altered, moved to another context or sealed
        with another key (a changed ``secret_key``)."""
        if sealed[:1] != _SEALED_VERSION or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise ValueError("unknown sealed secret format")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], context)
        except InvalidTag:
            raise ValueError("sealed secret does not authenticate") from None
