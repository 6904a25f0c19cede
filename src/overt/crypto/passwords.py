"""Password hashing with scrypt (RFC 7914), for the few people who log in with a password: the
moderators of the safety console. Devices never have passwords (they sign their requests).

A hash is one ASCII line in the PHC string style, so that it names its own parameters and a
later change of defaults keeps old hashes verifiable::

    $scrypt$ln=<log2 N>,r=<r>,p=<p>$<base64url salt>$<base64url 32-byte key>

:func:`scrypt_hash` draws a 16-byte salt from the :class:`~overt.crypto.Rng` it is handed;
:func:`scrypt_verify` recomputes the key with the hash's own parameters and compares it in
constant time. A wrong password, a malformed hash and parameters outside the bounds below all
end in the same ``False`` (the hash is the store's, not the caller's, so there is nothing to
tell), and parameters are bounded so that a tampered store cannot make a login allocate
gigabytes. The default cost is OWASP's recommendation for scrypt (N = 2^17, r = 8, p = 1:
128 MiB and roughly a quarter of a second per check); tests may pass a smaller ``log_n`` down to
:data:`SCRYPT_MIN_LOG_N`.

This module knows no accounts, no storage and no clock.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from overt.crypto._rng import Rng

#: Default cost: N = 2^17 (OWASP's minimum recommendation for scrypt), r = 8, p = 1.
SCRYPT_LOG_N: Final = 17
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
#: The smallest and largest ``log2 N`` a hash may name (2^14: 16 MiB; 2^20: 1 GiB).
SCRYPT_MIN_LOG_N: Final = 14
SCRYPT_MAX_LOG_N: Final = 20
#: Bounds of r and p a stored hash may name.
SCRYPT_MAX_R: Final = 16
SCRYPT_MAX_P: Final = 4
SALT_LEN: Final = 16
KEY_LEN: Final = 32
#: Longest password accepted (UTF-8 bytes): scrypt takes any length, but a login form need not.
MAX_PASSWORD_BYTES: Final = 1024

_FORMAT: Final = re.compile(
    r"\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,2}),p=([0-9]{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)"
)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return b""


def _kdf(salt: bytes, log_n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=KEY_LEN, n=1 << log_n, r=r, p=p)


def scrypt_hash(
    password: str, rng: Rng, *, log_n: int = SCRYPT_LOG_N, r: int = SCRYPT_R, p: int = SCRYPT_P
) -> str:
    """The hash line of ``password`` under a fresh salt; :class:`ValueError` for a password
    over :data:`MAX_PASSWORD_BYTES` or parameters outside the bounds."""
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a password is text (it holds a lone surrogate)") from None
    if len(secret) > MAX_PASSWORD_BYTES:
        raise ValueError(f"a password is at most {MAX_PASSWORD_BYTES} bytes")
    if not (
        SCRYPT_MIN_LOG_N <= log_n <= SCRYPT_MAX_LOG_N
        and 1 <= r <= SCRYPT_MAX_R
        and 1 <= p <= SCRYPT_MAX_P
    ):
        raise ValueError("scrypt parameters outside the accepted bounds")
    salt = rng.random_bytes(SALT_LEN)
    key = _kdf(salt, log_n, r, p).derive(secret)
    return f"$scrypt$ln={log_n},r={r},p={p}${_b64e(salt)}${_b64e(key)}"


def scrypt_verify(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (a line of :func:`scrypt_hash`). ``False`` for
    a wrong password and for a hash that is malformed or out of bounds alike."""
    match = _FORMAT.fullmatch(hashed)
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if match is None or len(secret) > MAX_PASSWORD_BYTES:
        return False
    log_n, r, p = (int(g) for g in match.group(1, 2, 3))
    salt, key = _b64d(match.group(4)), _b64d(match.group(5))
    if not (
        SCRYPT_MIN_LOG_N <= log_n <= SCRYPT_MAX_LOG_N
        and 1 <= r <= SCRYPT_MAX_R
        and 1 <= p <= SCRYPT_MAX_P
        and len(salt) == SALT_LEN
        and len(key) == KEY_LEN
    ):
        return False
    try:
        _kdf(salt, log_n, r, p).verify(secret, key)
    except InvalidKey:
        return False
    return True


def needs_rehash(hashed: str) -> bool:
    """Whether ``hashed`` was made with a cost below today's default (rehash at next login)."""
    match = _FORMAT.fullmatch(hashed)
    if match is None:
        return True
    log_n, r, p = (int(g) for g in match.group(1, 2, 3))
    return (log_n, r, p) < (SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)


__all__ = [
    "MAX_PASSWORD_BYTES",
    "SCRYPT_LOG_N",
    "SCRYPT_MIN_LOG_N",
    "needs_rehash",
    "scrypt_hash",
    "scrypt_verify",
]
