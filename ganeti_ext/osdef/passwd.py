"""Password hashes for /etc/shadow, made on the host (the plain password never leaves it).

SHA-256-crypt ($5$) and SHA-512-crypt ($6$), as glibc's crypt(3) makes them (Ulrich
Drepper's specification); Python's own crypt module is gone from Python 3.13. The salt
comes from the `secrets` module (upstream snf-image used a non-cryptographic RNG).
"""

from __future__ import annotations

import hashlib
import secrets

from ganeti_ext.errors import ValidationError

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_ROUNDS = 5000
METHODS = {"sha256": ("5", hashlib.sha256, 32), "sha512": ("6", hashlib.sha512, 64)}
# The order in which digest bytes are encoded, three at a time (then a short tail).
_ORDER = {
    "sha256": (
        [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5),
         (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29)],
        ((None, 31, 30), 3),
    ),
    "sha512": (
        [(0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
         (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
         (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16),
         (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41)],
        ((None, None, 63), 2),
    ),
}  # fmt: skip


def _b64(b2: int, b1: int, b0: int, count: int) -> str:
    value = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(count):
        out.append(_ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(out)


def _repeat(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def sha_crypt(password: bytes, salt: str, method: str = "sha512", rounds: int | None = None) -> str:
    """The crypt(3) string of `password` with `salt` (up to 16 characters)."""
    prefix, new, size = METHODS[method]
    salt_bytes = salt.encode("ascii")[:16]
    effective = DEFAULT_ROUNDS if rounds is None else min(max(rounds, 1000), 999_999_999)

    alternate = new(password + salt_bytes + password).digest()
    digest_a = new(password + salt_bytes)
    count = len(password)
    while count > size:
        digest_a.update(alternate)
        count -= size
    digest_a.update(alternate[:count])
    count = len(password)
    while count:
        digest_a.update(alternate if count & 1 else password)
        count >>= 1
    result = digest_a.digest()

    p_bytes = _repeat(new(password * len(password)).digest(), len(password))
    s_bytes = _repeat(new(salt_bytes * (16 + result[0])).digest(), len(salt_bytes))
    for index in range(effective):
        step = new(p_bytes if index & 1 else result)
        if index % 3:
            step.update(s_bytes)
        if index % 7:
            step.update(p_bytes)
        step.update(result if index & 1 else p_bytes)
        result = step.digest()

    triples, (tail, tail_count) = _ORDER[method]
    encoded = "".join(_b64(result[a], result[b], result[c], 4) for a, b, c in triples)
    encoded += _b64(*(0 if i is None else result[i] for i in tail), tail_count)
    rounds_part = f"rounds={effective}$" if rounds is not None else ""
    return f"${prefix}${rounds_part}{salt_bytes.decode()}${encoded}"


def hash_password(password: str, method: str | None = None) -> str:
    """A new hash of `password` by the image's PASSWD_HASHING_METHOD (sha512 by default)."""
    chosen = (method or "sha512").strip().lower()
    if chosen not in METHODS:
        raise ValidationError(
            f"image property PASSWD_HASHING_METHOD={method}: only sha256 and sha512 are "
            "supported (the other crypt(3) methods are weak or not in Python)"
        )
    salt = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return sha_crypt(password.encode("utf-8"), salt, chosen)
