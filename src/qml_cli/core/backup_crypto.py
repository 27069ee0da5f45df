"""Backup encryption: AES-256-GCM in 1 MiB chunks, keys derived from ENCRYPTION_KEY.

An encrypted file is `MAGIC`, a 7-byte random nonce prefix, then chunks, each a
4-byte big-endian length and the ciphertext with its 16-byte tag. Chunk `i` uses the
nonce `prefix || i (4 bytes) || last (1 byte)` and the file name as associated data,
so a modified, reordered, truncated, extended or renamed file fails to decrypt.
Keys come from HKDF-SHA256 over the setting with the backup's random salt, one key for
the data files and one for the manifest's HMAC-SHA256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from qml_cli.errors import CheckFailed

MAGIC = b"QMLENC01"
CHUNK_BYTES = 1 << 20
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
SALT_BYTES = 16


def derive_key(secret: str, salt: bytes, purpose: str) -> bytes:
    """Derive a 32-byte key for `purpose` ("data" or "manifest") with HKDF-SHA256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=f"qml backup v1 {purpose}".encode(),
    )
    return hkdf.derive(secret.encode())


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _chunks(source: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield (plaintext chunk, is last); an empty source yields one empty last chunk."""
    current = source.read(CHUNK_BYTES)
    while True:
        following = source.read(CHUNK_BYTES)
        yield current, not following
        if not following:
            return
        current = following


def encrypt_file(source: Path, target: Path, key: bytes) -> None:
    """Encrypt `source` into `target`; the associated data is `target`'s name."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher = AESGCM(key)
    prefix = os.urandom(NONCE_PREFIX_BYTES)
    aad = target.name.encode()
    with open(source, "rb") as plain, open(target, "wb") as sealed:
        sealed.write(MAGIC + prefix)
        for index, (chunk, last) in enumerate(_chunks(plain)):
            if index >= 2**32:
                raise CheckFailed(f"{source.name} is too large to encrypt in one file.")
            ciphertext = cipher.encrypt(_nonce(prefix, index, last), chunk, aad)
            sealed.write(len(ciphertext).to_bytes(4, "big") + ciphertext)


def _read_exact(handle: BinaryIO, count: int, name: str) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise CheckFailed(f"{name} is truncated: decryption failed.")
    return data


def decrypt_file(source: Path, target: Path, key: bytes) -> None:
    """Decrypt `source` into `target`; raise `CheckFailed` when it was modified or
    the key is wrong (the authentication tag does not match)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher = AESGCM(key)
    aad = source.name.encode()
    with open(source, "rb") as sealed, open(target, "wb") as plain:
        header = sealed.read(len(MAGIC) + NONCE_PREFIX_BYTES)
        if len(header) != len(MAGIC) + NONCE_PREFIX_BYTES or not header.startswith(
            MAGIC
        ):
            raise CheckFailed(f"{source.name} is not a qml encrypted file.")
        prefix = header[len(MAGIC) :]
        length_bytes = _read_exact(sealed, 4, source.name)
        index = 0
        while True:
            length = int.from_bytes(length_bytes, "big")
            if length < TAG_BYTES or length > CHUNK_BYTES + TAG_BYTES:
                raise CheckFailed(
                    f"{source.name} has an invalid chunk length: decryption failed."
                )
            ciphertext = _read_exact(sealed, length, source.name)
            length_bytes = sealed.read(4)
            last = not length_bytes
            try:
                plain.write(
                    cipher.decrypt(_nonce(prefix, index, last), ciphertext, aad)
                )
            except InvalidTag:
                raise CheckFailed(
                    f"{source.name} failed authentication: the file was "
                    "modified or ENCRYPTION_KEY is not the key that "
                    "encrypted it."
                ) from None
            if last:
                return
            if len(length_bytes) != 4:
                raise CheckFailed(f"{source.name} is truncated: decryption failed.")
            index += 1


def canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def manifest_mac(manifest: dict[str, Any], key: bytes) -> str:
    """Return the HMAC-SHA256 (hex) of the manifest without its `mac` field."""
    body = {name: value for name, value in manifest.items() if name != "mac"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def mac_matches(manifest: dict[str, Any], key: bytes) -> bool:
    return hmac.compare_digest(manifest.get("mac", ""), manifest_mac(manifest, key))
