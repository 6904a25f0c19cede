"""The Double Ratchet, per Signal's specification (rev. 4), as pure functions over immutable state.

* Root step: ``RK', CK = HKDF-SHA256(salt = RK, ikm = DH output,
  info = "Overt_Ratchet_Root_v1", L = 64)``.
* Chain step: ``MK = HMAC-SHA256(CK, 0x01)``, ``CK' = HMAC-SHA256(CK, 0x02)``.
* Message keys encrypt content with :func:`overt.crypto.seal` (key-committing AES-256-GCM).

Every function takes a :class:`RatchetState` and returns a *new* one; nothing is mutated, so a
caller stages the new state, checks the message fully, and only then commits it (a failed
decrypt leaves the stored state unchanged). Out-of-order messages are served from stored
skipped keys, within the bounds of :mod:`overt.protocol.limits`; a counter jump beyond
``MAX_SKIP_PER_CHAIN`` is refused before any key is derived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from overt.crypto import Rng, X25519PrivateKey, X25519PublicKey, hkdf_sha256, hmac_sha256
from overt.errors import DuplicateMessage, LimitExceeded, LocalError
from overt.protocol.limits import MAX_RECEIVER_CHAINS, MAX_SKIP_PER_CHAIN, MAX_SKIPPED_KEYS
from overt.wire import RatchetHeader

ROOT_INFO = b"Overt_Ratchet_Root_v1"
_MK_BYTE = b"\x01"
_CK_BYTE = b"\x02"

SkippedKeys = Mapping[tuple[bytes, int], bytes]
_EMPTY: SkippedKeys = {}


class RatchetState(NamedTuple):
    """One session's ratchet. ``skipped`` is never mutated in place (copy on write).

    A named tuple rather than a frozen dataclass: it is rebuilt for every message, and tuple
    construction is several times cheaper; it is just as immutable.
    """

    dhs: X25519PrivateKey
    dhr: bytes | None
    rk: bytes
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    prev_chains: tuple[bytes, ...]
    skipped: SkippedKeys

    def __repr__(self) -> str:
        return f"RatchetState(ns={self.ns}, nr={self.nr}, pn={self.pn}, <keys redacted>)"


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    out = hkdf_sha256(dh_out, rk, ROOT_INFO, 64)
    return out[:32], out[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """Return ``(next chain key, message key)``."""
    return hmac_sha256(ck, _CK_BYTE), hmac_sha256(ck, _MK_BYTE)


def init_initiator(shared: bytes, responder_ratchet: bytes, rng: Rng) -> RatchetState:
    """Alice's state after PQXDH: the responder's signed prekey is its first ratchet key."""
    dhs = X25519PrivateKey.generate(rng)
    rk, cks = kdf_rk(shared, dhs.exchange(X25519PublicKey.from_bytes(responder_ratchet)))
    return RatchetState(dhs, responder_ratchet, rk, cks, None, 0, 0, 0, (), _EMPTY)


def init_responder(shared: bytes, signed_prekey: X25519PrivateKey) -> RatchetState:
    """Bob's state after PQXDH: he can send once the first message has arrived."""
    return RatchetState(signed_prekey, None, shared, None, None, 0, 0, 0, (), _EMPTY)


def step_send(state: RatchetState) -> tuple[RatchetState, RatchetHeader, bytes]:
    """Advance the sending chain; return the new state, the header and the message key."""
    if state.cks is None:
        raise LocalError("this session cannot send before it has received a message")
    cks, mk = kdf_ck(state.cks)
    header = RatchetHeader(state.dhs.public_key.raw, state.pn, state.ns)
    new = RatchetState(
        state.dhs, state.dhr, state.rk, cks, state.ckr,
        state.ns + 1, state.nr, state.pn, state.prev_chains, state.skipped,
    )  # fmt: skip
    return new, header, mk


def _skip(
    skipped: dict[tuple[bytes, int], bytes], dh: bytes, ck: bytes, start: int, until: int
) -> bytes:
    """Store the keys of messages ``start..until-1`` of chain ``dh``; return the chain key."""
    for n in range(start, until):
        ck, mk = kdf_ck(ck)
        skipped[(dh, n)] = mk
    return ck


def _evict(skipped: dict[tuple[bytes, int], bytes], keep_chains: set[bytes]) -> None:
    for key in [k for k in skipped if k[0] not in keep_chains]:
        del skipped[key]
    while len(skipped) > MAX_SKIPPED_KEYS:
        del skipped[next(iter(skipped))]


def step_receive(
    state: RatchetState, header: RatchetHeader, rng: Rng
) -> tuple[RatchetState, bytes]:
    """Return the new state and the message key for ``header``, or raise.

    :class:`DuplicateMessage` when the key was already used (or dropped by a bound),
    :class:`LimitExceeded` for a jump beyond the skip bound. The caller commits the new state
    only after the message authenticates.
    """
    found = state.skipped.get((header.dh, header.n))
    if found is not None:
        skipped = dict(state.skipped)
        del skipped[(header.dh, header.n)]
        return _with(state, skipped=skipped), found

    if header.dh == state.dhr:
        if header.n < state.nr or state.ckr is None:
            raise DuplicateMessage("message already received")
        if header.n - state.nr > MAX_SKIP_PER_CHAIN:
            raise LimitExceeded("message counter jumps too far ahead")
        if header.n == state.nr:
            ckr, mk = kdf_ck(state.ckr)
            return _with(state, ckr=ckr, nr=state.nr + 1), mk
        skipped = dict(state.skipped)
        ckr = _skip(skipped, header.dh, state.ckr, state.nr, header.n)
        ckr, mk = kdf_ck(ckr)
        _evict(skipped, {*state.prev_chains, header.dh})
        return _with(state, ckr=ckr, nr=header.n + 1, skipped=skipped), mk

    if header.dh in state.prev_chains:
        raise DuplicateMessage("message already received")

    # A new ratchet key from the peer: close the current receiving chain, then step.
    if header.n > MAX_SKIP_PER_CHAIN:
        raise LimitExceeded("message counter jumps too far ahead")
    if state.ckr is not None and header.pn - state.nr > MAX_SKIP_PER_CHAIN:
        raise LimitExceeded("previous chain length jumps too far ahead")
    skipped = dict(state.skipped)
    prev = state.prev_chains
    if state.ckr is not None and state.dhr is not None:
        _skip(skipped, state.dhr, state.ckr, state.nr, header.pn)
    if state.dhr is not None:
        prev = (*prev, state.dhr)[-(MAX_RECEIVER_CHAINS - 1) :]
    peer = X25519PublicKey.from_bytes(header.dh)
    rk, ckr = kdf_rk(state.rk, state.dhs.exchange(peer))
    dhs = X25519PrivateKey.generate(rng)
    rk, cks = kdf_rk(rk, dhs.exchange(peer))
    ckr = _skip(skipped, header.dh, ckr, 0, header.n)
    ckr, mk = kdf_ck(ckr)
    _evict(skipped, {*prev, header.dh})
    new = RatchetState(dhs, header.dh, rk, cks, ckr, 0, header.n + 1, state.ns, prev, skipped)
    return new, mk


def _with(
    s: RatchetState,
    *,
    ckr: bytes | None = None,
    nr: int | None = None,
    skipped: SkippedKeys | None = None,
) -> RatchetState:
    return RatchetState(
        s.dhs,
        s.dhr,
        s.rk,
        s.cks,
        s.ckr if ckr is None else ckr,
        s.ns,
        s.nr if nr is None else nr,
        s.pn,
        s.prev_chains,
        s.skipped if skipped is None else skipped,
    )
