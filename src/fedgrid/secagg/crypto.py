"""Key agreement, key derivation, share encryption and the mask PRG."""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from numpy.typing import NDArray

from fedgrid.secagg.errors import MalformedMessage

KEY_BYTES = 32
SEED_BYTES = 32
NONCE_BYTES = 12
_ZERO_COUNTER = bytes(16)


def context(*parts: str | bytes) -> bytes:
    """An unambiguous byte string of labelled parts (length-prefixed)."""
    out = bytearray()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def new_private_key() -> X25519PrivateKey:
    """A fresh X25519 private key."""
    return X25519PrivateKey.generate()


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of a private key (what gets secret-shared)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of the matching public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_private(data: bytes) -> X25519PrivateKey:
    """A private key from raw bytes."""
    if len(data) != KEY_BYTES:
        raise MalformedMessage(f"a private key is {KEY_BYTES} bytes, got {len(data)}")
    return X25519PrivateKey.from_private_bytes(data)


def load_public(data: bytes) -> X25519PublicKey:
    """A public key from raw bytes; refuses anything but 32 bytes."""
    if len(data) != KEY_BYTES:
        raise MalformedMessage(f"a public key is {KEY_BYTES} bytes, got {len(data)}")
    return X25519PublicKey.from_public_bytes(data)


def derive(secret: bytes, info: bytes) -> bytes:
    """A 32-byte key from secret material, bound to `info` (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info
    ).derive(secret)


def agree(private: X25519PrivateKey, peer: X25519PublicKey, info: bytes) -> bytes:
    """A key shared by two workers: X25519 then HKDF bound to `info`."""
    try:
        shared = private.exchange(peer)
    except ValueError as exc:
        raise MalformedMessage(f"key agreement failed: {exc}") from exc
    return derive(shared, info)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM: a random nonce followed by the ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """The plaintext of seal(); any tampering raises MalformedMessage."""
    if len(sealed) < NONCE_BYTES + 16:
        raise MalformedMessage("a sealed share is too short")
    try:
        return AESGCM(key).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated
        )
    except InvalidTag as exc:
        raise MalformedMessage("a sealed share does not authenticate") from exc


def commitment(seed: bytes, info: bytes) -> bytes:
    """A binding, hiding commitment to a 32-byte random seed."""
    return hashlib.sha256(info + seed).digest()


def keystream(
    key: bytes, length: int, dtype: np.dtype[np.unsignedinteger]
) -> NDArray[np.unsignedinteger]:
    """`length` uniform words from AES-256-CTR keyed by `key` (a PRG).

    Each key must expand exactly one mask; callers derive a fresh key per mask.
    """
    encryptor = Cipher(algorithms.AES(key), modes.CTR(_ZERO_COUNTER)).encryptor()
    stream = encryptor.update(bytes(length * dtype.itemsize))
    return np.frombuffer(stream, dtype=dtype)
