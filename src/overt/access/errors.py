"""The errors of :mod:`overt.access`, grafted onto the one tree of :mod:`overt.errors`.

Where they hang::

    OvertError
    ├── LocalError
    │   └── DkgStateError          a DKG participant was driven out of order (misuse)    (500)
    └── RemoteError
        ├── DecodeError            a warrant, DKG message, share or bundle is malformed   (400)
        ├── InvalidMessage         a signature or proof failed — without a reason         (400)
        │   └── EvidenceRejected   one check of an evidence bundle failed: says WHICH
        │                          check of which message, never why a proof failed       (400)
        ├── ProtocolViolation
        │   ├── ThresholdNotMet    fewer than t custodians answered with a valid share
        │   │                      (carries who was dropped)                              (400)
        │   └── DkgFailed          the DKG cannot complete: fewer than t qualified
        │                          dealers, or this participant was disqualified          (400)
        └── UntrustedIdentity      a warrant or revocation signed by a court key the
                                   manifest does not list (from overt.errors)             (409)

Failed proofs and signatures stay the uninformative :class:`overt.errors.InvalidMessage` on
every online path (a custodian answering an LEA, an LEA checking a custodian). Offline evidence
verification names the failing check, because its reader is a person deciding whether a bundle
is trustworthy, and it is no oracle: it holds no secret.
"""

from __future__ import annotations

from collections.abc import Collection

from overt.errors import InvalidMessage, LocalError, ProtocolViolation, RemoteError


class DkgStateError(LocalError):
    """A DKG participant was asked for a step its state does not allow; it is now unusable."""


class DkgFailed(ProtocolViolation):
    """The DKG cannot produce a key: too few qualified dealers, or this participant is out."""


class ThresholdNotMet(ProtocolViolation):
    """Fewer than ``threshold`` valid decryption shares; ``rejected`` lists the custodians
    (1-based indices) whose answer failed its proof or did not fit the request."""

    def __init__(self, valid: int, threshold: int, rejected: Collection[int] = ()) -> None:
        self.valid = valid
        self.threshold = threshold
        self.rejected = tuple(sorted(rejected))
        dropped = f"; dropped custodians {list(self.rejected)}" if self.rejected else ""
        super().__init__(f"{valid} valid decryption shares, {threshold} needed{dropped}")


class EvidenceRejected(InvalidMessage):
    """An evidence bundle failed the check named in the message."""

    def __init__(self, problem: str) -> None:
        RemoteError.__init__(self, f"evidence rejected: {problem}")
        self.problem = problem
