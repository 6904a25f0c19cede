"""The custodians of the lawful-access test deployments: five signing keys, their manifest
entries, and an honest DKG among in-process participants with every message signed as its
custodian — the :class:`~overt.services.custodian_wire.EpochPublication` a provider receives
(what ``overt custodian dkg`` sends it). Shared by the client and server tests of lawful
access; tests of the DKG itself drive :class:`~overt.access.DkgParticipant` directly
(``tests/access/support.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from overt.access import DkgParticipant
from overt.access.dkg import DkgParameters, DkgTranscript
from overt.crypto import DeterministicRng, Ed25519PrivateKey, sha256
from overt.services.custodian_wire import EpochPublication, MessageKind, SignedMessage
from overt.transparency.manifest import Custodian

#: The custodians' signing keys (custodian ``i`` is ``CUSTODIANS[i - 1]``).
CUSTODIANS = tuple(
    Ed25519PrivateKey.generate(DeterministicRng(f"custodian{i}")) for i in range(1, 6)
)

Confirm = Callable[[int, bytes], bytes | None]
"""What custodian ``j`` confirms for the encoded transcript (None: it does not confirm)."""


def custodian_entries() -> tuple[Custodian, ...]:
    """The manifest's entries for :data:`CUSTODIANS`: custodian ``i`` as "Custodian i" on
    loopback port ``7100 + i`` (in process, nothing calls it there)."""
    return tuple(
        Custodian(f"Custodian {i}", f"http://127.0.0.1:{7100 + i}", k.public_key)
        for i, k in enumerate(CUSTODIANS, start=1)
    )


def _honest(j: int, transcript: bytes) -> bytes | None:
    return sha256(transcript)


def signed_publication(
    params: DkgParameters,
    custodians: Sequence[Ed25519PrivateKey],
    rng_label: Callable[[int], str],
    *,
    attempt: int = 0,
    confirm: Confirm = _honest,
) -> tuple[EpochPublication, DkgTranscript]:
    """Participants ``1..n`` of ``params`` (participant ``i`` draws from
    ``DeterministicRng(rng_label(i))`` and signs with ``custodians[i - 1]``) run the DKG;
    the publication of attempt ``attempt`` and the transcript every participant reached."""
    ps = {
        i: DkgParticipant(params, i, DeterministicRng(rng_label(i))) for i in range(1, params.n + 1)
    }
    outs = {i: p.round1() for i, p in ps.items()}
    for j, p in ps.items():
        for i, out in outs.items():
            if i != j:
                p.receive_round1(out.commitment, out.share_for(j))
    complaints = {j: p.round2() for j, p in ps.items()}
    for j, p in ps.items():
        for i, c in complaints.items():
            if i != j:
                p.receive_complaints(c)
    answers = {i: a for i, p in ps.items() if (a := p.round3()) is not None}
    transcript = {j: p.finalize() for j, p in ps.items()}[1].transcript
    encoded = transcript.encode()

    def signed(i: int, kind: MessageKind, body: bytes) -> SignedMessage:
        return SignedMessage.sign(custodians[i - 1], params.session_id, kind, i, body)

    publication = EpochPublication(
        params.epoch,
        attempt,
        tuple(signed(i, MessageKind.COMMITMENT, o.commitment.encode()) for i, o in outs.items()),
        tuple(signed(i, MessageKind.COMPLAINTS, c.encode()) for i, c in complaints.items()),
        tuple(signed(i, MessageKind.ANSWER, a.encode()) for i, a in answers.items()),
        tuple(
            signed(j, MessageKind.CONFIRMATION, body)
            for j in ps
            if (body := confirm(j, encoded)) is not None
        ),
    )
    return publication, transcript
