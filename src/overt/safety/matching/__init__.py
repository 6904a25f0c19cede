"""overt.safety.matching — known-content matching under end-to-end encryption (DESIGN.md §5).

The client hashes every image it sends with PDQ, turns the hash into locality-sensitive keys and
attaches *vouchers* that the provider can open only for keys in a blinded list, and only once an
account has ``t`` matching images; synthetic vouchers hide the count below ``t``. The list's
versions are committed in the transparency log and signed by child-safety organisations named
in the manifest; the client refuses a table that does not match.

* :mod:`~overt.safety.matching.pdq` — decode, trim borders, reference PDQ (``pdqhash``).
* :mod:`~overt.safety.matching.lsh` — bit-sampling keys with client-side multi-probing.
* :mod:`~overt.safety.matching.table` — the provider's blinded cuckoo table, its commitment,
  the organisations' opening proofs, deltas.
* :mod:`~overt.safety.matching.psi` — vouchers, synthetic vouchers, opening, threshold.
* :mod:`~overt.safety.matching.dhf` — Shamir sharing and detection of synthetic shares.
* :mod:`~overt.safety.matching.lists` — list import, signed commitments, the client's check.
* :mod:`~overt.safety.matching.payload` — the payload and the server's re-check.
* :mod:`~overt.safety.matching.signals` — signal types as plugins (PDQ).

Everything here is sans-I/O: bytes, arrays and entries in, bytes and verdicts out; randomness
through :class:`overt.crypto.Rng`. It imports neither the server nor the client. docs/matching.md
says what each party learns and the limits.
"""

from overt.safety.matching.errors import ListImportError, ListRefused, RefusalReason
from overt.safety.matching.lists import (
    MIN_LIST_SIGNERS,
    HashList,
    ImportReport,
    ListFormat,
    VerifiedTable,
    commitment_entry,
    detect_format,
    import_list,
    sign_statement,
    valid_signers,
    verify_table,
)
from overt.safety.matching.lsh import LshParams, list_keys, probe_keys
from overt.safety.matching.payload import (
    MatchPayload,
    ModerationCandidate,
    PdqIndex,
    make_payload,
    recheck,
)
from overt.safety.matching.pdq import (
    MATCH_DISTANCE,
    MIN_QUALITY,
    PdqDigest,
    PdqHash,
    decode_image,
    hash_image,
    hash_rgb,
    trim_uniform_borders,
    visual_derivative,
)
from overt.safety.matching.psi import (
    AccountMatches,
    ImageBundle,
    MatchingSecret,
    OpenedImage,
    PsiParams,
    RevealedImage,
    ThresholdOutcome,
    make_bundle,
    open_bundle,
)
from overt.safety.matching.signals import SIGNAL_TYPES, PdqSignal, SignalType, signal_types_for
from overt.safety.matching.table import (
    BlindedTable,
    ProviderKey,
    TableDelta,
    TableHeader,
    TableOpening,
    apply_delta,
    build_table,
    make_delta,
    update_table,
    verify_opening,
)

__all__ = [
    "MATCH_DISTANCE",
    "MIN_LIST_SIGNERS",
    "MIN_QUALITY",
    "SIGNAL_TYPES",
    "AccountMatches",
    "BlindedTable",
    "HashList",
    "ImageBundle",
    "ImportReport",
    "ListFormat",
    "ListImportError",
    "ListRefused",
    "LshParams",
    "MatchPayload",
    "MatchingSecret",
    "ModerationCandidate",
    "OpenedImage",
    "PdqDigest",
    "PdqHash",
    "PdqIndex",
    "PdqSignal",
    "ProviderKey",
    "PsiParams",
    "RefusalReason",
    "RevealedImage",
    "SignalType",
    "TableDelta",
    "TableHeader",
    "TableOpening",
    "ThresholdOutcome",
    "VerifiedTable",
    "apply_delta",
    "build_table",
    "commitment_entry",
    "decode_image",
    "detect_format",
    "hash_image",
    "hash_rgb",
    "import_list",
    "list_keys",
    "make_bundle",
    "make_delta",
    "make_payload",
    "open_bundle",
    "probe_keys",
    "recheck",
    "sign_statement",
    "signal_types_for",
    "trim_uniform_borders",
    "update_table",
    "valid_signers",
    "verify_opening",
    "verify_table",
    "visual_derivative",
]
