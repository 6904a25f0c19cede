"""Sessions between two devices: PQXDH + Double Ratchet + envelopes, as pure functions.

:func:`encrypt` and :func:`decrypt` take a :class:`SessionRecord` (the current session with a
peer device plus archived ones) and return a new record; the caller persists it only when the
call returns. Every check — ratchet bounds, key-committing AEAD over the envelope header,
franking commitment, access field — passes before a new record exists, so a failed decrypt
changes nothing.

Records serialize to versioned bytes (:meth:`SessionRecord.encode`); the storage schema is
separate from the wire schema and never uses pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from overt.crypto import Rng, X25519PrivateKey, open_sealed, seal
from overt.errors import (
    DecodeError,
    DuplicateMessage,
    InvalidMessage,
    LocalError,
    OvertError,
    ProtocolViolation,
    UnknownSession,
)
from overt.protocol import access, franking, pqxdh
from overt.protocol.access import AccessKind, EscrowPolicy
from overt.protocol.identity import DeviceIdentity
from overt.protocol.limits import MAX_ARCHIVED_SESSIONS, MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS
from overt.protocol.ratchet import (
    RatchetState,
    init_initiator,
    init_responder,
    step_receive,
    step_send,
)
from overt.wire import (
    Address,
    Content,
    Envelope,
    MessageType,
    PqxdhInit,
    PreKeyBundle,
    Reader,
    Writer,
)
from overt.wire.messages import DeviceEntry, encode_envelope_header

RECORD_VERSION = 1
_MAX_AD_LEN = 1024


class Session(NamedTuple):
    """One PQXDH-established session with a peer device (immutable, rebuilt per message)."""

    ad: bytes
    peer_identity_dh: bytes
    peer_identity_sign: bytes
    base_key: bytes
    pending_init: PqxdhInit | None
    ratchet: RatchetState

    def __repr__(self) -> str:
        return f"Session(base={self.base_key[:4].hex()}, {self.ratchet!r})"


@dataclass(frozen=True, slots=True, eq=False)
class SessionRecord:
    """All sessions with one peer device: the current one and up to N archived ones."""

    current: Session | None = None
    archived: tuple[Session, ...] = ()

    def promote(self, session: Session, replaced_index: int | None) -> SessionRecord:
        """Make ``session`` current. ``replaced_index`` is its old place in ``archived``
        (None if it is new or already current)."""
        if replaced_index is None and (
            self.current is None or self.current.base_key == session.base_key
        ):
            return SessionRecord(session, self.archived)
        archived = list(self.archived)
        if replaced_index is not None:
            del archived[replaced_index]
        if (
            self.current is not None
            and session is not self.current
            and (self.current.base_key != session.base_key)
        ):
            archived.insert(0, self.current)
        return SessionRecord(session, tuple(archived[:MAX_ARCHIVED_SESSIONS]))

    def find_base_key(self, base_key: bytes) -> tuple[Session, int | None] | None:
        if self.current is not None and self.current.base_key == base_key:
            return self.current, None
        for i, s in enumerate(self.archived):
            if s.base_key == base_key:
                return s, i
        return None

    # -- persistence ---------------------------------------------------------------------

    def encode(self) -> bytes:
        w = Writer().u8(RECORD_VERSION).boolean(self.current is not None)
        if self.current is not None:
            _write_session(w, self.current)
        w.u8(len(self.archived))
        for s in self.archived:
            _write_session(w, s)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> SessionRecord:
        r = Reader(data, "SessionRecord")
        r.version(RECORD_VERSION)
        current = _read_session(r) if r.boolean("has_current") else None
        n = r.u8("archived_count")
        if n > MAX_ARCHIVED_SESSIONS:
            raise DecodeError("SessionRecord: too many archived sessions")
        archived = tuple(_read_session(r) for _ in range(n))
        r.finish()
        return cls(current, archived)


def _opt(w: Writer, v: bytes | None) -> None:
    w.boolean(v is not None)
    if v is not None:
        w.fixed(v, 32)


def _read_opt(r: Reader, field: str) -> bytes | None:
    return r.fixed(32, field) if r.boolean(field) else None


def _write_session(w: Writer, s: Session) -> None:
    w.vec(s.ad, 2, _MAX_AD_LEN).fixed(s.peer_identity_dh, 32).fixed(s.peer_identity_sign, 32)
    w.fixed(s.base_key, 32).boolean(s.pending_init is not None)
    if s.pending_init is not None:
        s.pending_init.write(w)
    st = s.ratchet
    w.fixed(st.dhs.export_secret(), 32)
    _opt(w, st.dhr)
    w.fixed(st.rk, 32)
    _opt(w, st.cks)
    _opt(w, st.ckr)
    w.u32(st.ns).u32(st.nr).u32(st.pn).u8(len(st.prev_chains))
    for dh in st.prev_chains:
        w.fixed(dh, 32)
    w.u16(len(st.skipped))
    for (dh, n), mk in st.skipped.items():
        w.fixed(dh, 32).u32(n).fixed(mk, 32)


def _read_session(r: Reader) -> Session:
    ad = r.vec(2, "ad", _MAX_AD_LEN)
    peer_dh, peer_sign, base = r.fixed(32, "peer_dh"), r.fixed(32, "peer_sign"), r.fixed(32, "base")
    init = PqxdhInit.read(r) if r.boolean("has_init") else None
    dhs = X25519PrivateKey.from_secret_bytes(r.fixed(32, "dhs"))
    dhr = _read_opt(r, "dhr")
    rk = r.fixed(32, "rk")
    cks, ckr = _read_opt(r, "cks"), _read_opt(r, "ckr")
    ns, nr, pn = r.u32("ns"), r.u32("nr"), r.u32("pn")
    n_prev = r.u8("prev_count")
    if n_prev > MAX_RECEIVER_CHAINS:
        raise DecodeError("SessionRecord: too many receiver chains")
    prev = tuple(r.fixed(32, "prev") for _ in range(n_prev))
    n_skipped = r.u16("skipped_count")
    if n_skipped > MAX_SKIPPED_KEYS:
        raise DecodeError("SessionRecord: too many skipped keys")
    skipped: dict[tuple[bytes, int], bytes] = {}
    for _ in range(n_skipped):
        dh, n = r.fixed(32, "skipped.dh"), r.u32("skipped.n")
        skipped[(dh, n)] = r.fixed(32, "skipped.mk")
    ratchet = RatchetState(dhs, dhr, rk, cks, ckr, ns, nr, pn, prev, skipped)
    return Session(ad, peer_dh, peer_sign, base, init, ratchet)


# ----------------------------------------------------------------------------- setup


def start(
    record: SessionRecord | None,
    own: DeviceIdentity,
    bundle: PreKeyBundle,
    rng: Rng,
    expected: DeviceEntry | None = None,
) -> SessionRecord:
    """Start a new session from a peer's prekey bundle (the initiator side of PQXDH)."""
    hs, ek = pqxdh.initiate(own, bundle, rng, expected)
    ratchet = init_initiator(hs.shared_secret, bundle.signed_prekey.key, rng)
    session = Session(
        hs.associated_data, bundle.identity_dh, bundle.identity_sign, ek.public_key.raw,
        hs.init, ratchet,
    )  # fmt: skip
    return (record or SessionRecord()).promote(session, None)


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What every device copy of one message shares.

    ``access_kind`` is the context its access field is made under (policy ``escrow``):
    :attr:`~overt.protocol.access.AccessKind.KEY_MATERIAL` for a body that carries keys for
    other messages, else content. The caller says which; the recipient checks it fits.
    """

    conversation_id: bytes
    message_id: bytes
    timestamp_ms: int
    franking_key: bytes
    body: bytes
    access_kind: AccessKind = AccessKind.CONTENT

    def __repr__(self) -> str:
        return f"Outgoing(id={self.message_id.hex()}, <{len(self.body)} bytes>)"


@dataclass(frozen=True, slots=True)
class Received:
    """A message that passed every check."""

    envelope: Envelope
    body: bytes
    franking_key: bytes
    peer_identity_dh: bytes
    peer_identity_sign: bytes
    #: Prekeys the caller must delete together with storing the new record.
    consumed_one_time: int | None
    consumed_kem: int | None
    #: The context kind the access field matched (None: no field, under policy ``none``).
    #: The caller checks that it fits the body (key material only for a body of keys).
    access_kind: AccessKind | None = None

    @property
    def sender(self) -> Address:
        return self.envelope.sender

    @property
    def message_id(self) -> bytes:
        return self.envelope.message_id

    def __repr__(self) -> str:
        return f"Received(from={self.sender}, id={self.message_id.hex()}, <{len(self.body)} bytes>)"


def encrypt(
    record: SessionRecord,
    sender: Address,
    recipient: Address,
    msg: Outgoing,
    policy: EscrowPolicy | None,
) -> tuple[Envelope, SessionRecord]:
    """Encrypt one message copy for ``recipient``; return it and the new record."""
    session = record.current
    if session is None:
        raise LocalError("no session with this device: start one from its prekey bundle")
    ratchet, header, mk = step_send(session.ratchet)
    ctx = franking.context(sender, msg.conversation_id, msg.message_id, msg.timestamp_ms)
    commitment = franking.commit(msg.franking_key, ctx, msg.body)
    af = None
    if policy is not None:
        actx = access.direct_context(
            msg.access_kind, policy.epoch, sender, recipient, msg.conversation_id,
            msg.message_id, msg.timestamp_ms,
        )  # fmt: skip
        af = access.create(policy.epoch, policy.public_key, mk, actx)
    mtype = MessageType.PREKEY if session.pending_init is not None else MessageType.MESSAGE
    header_bytes = encode_envelope_header(
        mtype, sender, recipient, msg.timestamp_ms, msg.message_id, msg.conversation_id,
        session.pending_init, header, commitment, af,
    )  # fmt: skip
    ct = seal(mk, Content(msg.franking_key, msg.body).encode(), session.ad + header_bytes)
    env = Envelope(
        mtype, sender, recipient, msg.timestamp_ms, msg.message_id, msg.conversation_id,
        session.pending_init, header, commitment, af, ct, header_bytes,
    )  # fmt: skip
    new_session = Session(
        session.ad, session.peer_identity_dh, session.peer_identity_sign, session.base_key,
        session.pending_init, ratchet,
    )  # fmt: skip
    return env, SessionRecord(new_session, record.archived)


def _open(
    session: Session, env: Envelope, rng: Rng, policy: EscrowPolicy | None
) -> tuple[Session, Content, AccessKind | None]:
    ratchet, mk = step_receive(session.ratchet, env.header, rng)
    plaintext = open_sealed(mk, env.ciphertext, session.ad + env.header_bytes())
    try:
        content = Content.decode(plaintext)
    except DecodeError:
        raise InvalidMessage() from None
    ctx = franking.context(env.sender, env.conversation_id, env.message_id, env.timestamp_ms)
    franking.verify(env.franking_commitment, content.franking_key, ctx, content.body)
    kind = None
    if policy is not None or env.access is not None:
        epoch = env.access.epoch if env.access is not None else (policy.epoch if policy else 0)
        fields = (epoch, env.sender, env.recipient, env.conversation_id, env.message_id,
                  env.timestamp_ms)  # fmt: skip
        kind = access.check_direct(
            policy, env.access, mk, access.context(*fields), access.key_context(*fields)
        )
    new = Session(
        session.ad, session.peer_identity_dh, session.peer_identity_sign, session.base_key,
        None, ratchet,
    )  # fmt: skip
    return new, content, kind


def decrypt(
    record: SessionRecord | None,
    own: DeviceIdentity,
    prekeys: pqxdh.PrekeySource,
    env: Envelope,
    rng: Rng,
    policy: EscrowPolicy | None,
) -> tuple[Received, SessionRecord]:
    """Check and decrypt one envelope; return it and the record to store.

    Raises :class:`InvalidMessage` for anything that fails authentication (ciphertext, key
    commitment, franking commitment), :class:`DuplicateMessage` for a message already
    received, :class:`PolicyViolation` for an access field that breaks the policy (it may
    match the content or the key context: :attr:`Received.access_kind` says which, and the
    caller checks that it fits the body),
    :class:`LimitExceeded` for a counter beyond the bounds and :class:`UnknownSession` when
    no session or prekey matches.
    """
    if env.recipient != own.address:
        raise ProtocolViolation("envelope is addressed to another device")
    record = record or SessionRecord()
    used_otk: int | None = None
    used_kem: int | None = None

    candidates: list[tuple[Session, int | None]] = []
    if env.init is not None:
        found = record.find_base_key(env.init.base_key)
        if found is not None:
            candidates.append(found)
        else:
            hs, spk = pqxdh.respond(own, prekeys, env.init)
            ratchet = init_responder(hs.shared_secret, spk)
            fresh = Session(
                hs.associated_data, env.init.identity_dh, env.init.identity_sign,
                env.init.base_key, None, ratchet,
            )  # fmt: skip
            candidates.append((fresh, -1))
            used_otk, used_kem = hs.consumed_one_time, hs.consumed_kem
    else:
        if record.current is not None:
            candidates.append((record.current, None))
        candidates.extend((s, i) for i, s in enumerate(record.archived))
        if not candidates:
            raise UnknownSession("no session with the sending device")

    first_error: OvertError | None = None
    for session, index in candidates:
        try:
            new_session, content, kind = _open(session, env, rng, policy)
        except (InvalidMessage, DuplicateMessage) as exc:
            if first_error is None or isinstance(exc, DuplicateMessage):
                first_error = exc
            continue
        new_record = record.promote(new_session, None if index == -1 else index)
        received = Received(
            env, content.body, content.franking_key, session.peer_identity_dh,
            session.peer_identity_sign, used_otk, used_kem, kind,
        )  # fmt: skip
        return received, new_record
    assert first_error is not None
    if isinstance(first_error, DuplicateMessage):
        raise DuplicateMessage("message already received")
    raise InvalidMessage()
