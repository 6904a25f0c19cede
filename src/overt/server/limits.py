"""Every bound the relay server enforces, named in one place.

A client controls every size and count it sends; each constant below is what stops a hostile
or broken client from making the server read, decode, store or send unbounded data. Breaching
a size or count bound is answered ``413 too_large``; a value outside a range is ``400
malformed``; going faster than the per-device rate is ``429 rate_limited``. None of them is ever
a 5xx.

Bounds fixed by the request models (and so by the OpenAPI description) are module constants;
the few a deployment may want to tune, or that tests shrink to reach cheaply, are gathered in
:class:`ServerLimits`. Bounds of the storage layer (mailbox depth, one-time prekeys per pool)
live in :mod:`overt.storage.limits` and reach clients through the same statuses.

This module knows no HTTP framework, no storage and no protocol: only numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from overt.errors import ConfigurationError

# ----------------------------------------------------------------------------- request sizes

MAX_REQUEST_BODY: Final = 4 * 1024 * 1024
"""Bytes of one JSON request body (checked on ``Content-Length`` and on the streamed body)."""

MAX_ATTACHMENT_SIZE: Final = 10 * 1024 * 1024
"""Bytes of one attachment upload (ciphertext); the body cap of ``POST /v1/attachments``."""

MAX_ENVELOPES_PER_SEND: Final = 256
"""Envelopes in one ``POST /v1/messages`` (one per recipient device, own devices included)."""

MAX_RECIPIENT_ACCOUNTS: Final = 256
"""Accounts named in the ``recipients`` of one send."""

MAX_ENVELOPE_LEN: Final = 256 * 1024
"""Bytes of one encoded envelope. Messages are small; large content travels as attachments."""

MAX_DEVICES_PER_ACCOUNT: Final = 64
"""Device ids listed per account in a send (the wire's bound on a device list)."""

MAX_PREKEYS_PER_UPLOAD: Final = 200
"""One-time prekeys of each kind in one upload (the pools themselves are bounded by storage)."""

MAX_ACK_IDS: Final = 1000
"""Server message ids in one acknowledgement (HTTP or WebSocket)."""

MAX_ACCOUNT_ID_LEN: Final = 64
"""Account ids are 1..64 bytes."""

MAX_DEVICE_LIST_LEN: Final = 16 * 1024
"""Bytes of one signed device list."""

MAX_PREKEY_LEN: Final = 2048
"""Bytes of one encoded prekey (an ML-KEM-768 prekey with its signature is 1253)."""

UINT32_MAX: Final = 0xFFFF_FFFF
"""Device ids and prekey ids are uint32."""

INT64_MAX: Final = (1 << 63) - 1
"""Serials, server message ids and times fit a signed 64-bit integer."""

ATTACHMENT_ID_LEN: Final = 16
"""Attachment ids are 16 random bytes drawn by the server."""

# ----------------------------------------------------------------------------- fetching

FETCH_PAGE_DEFAULT: Final = 100
"""Messages per ``GET /v1/messages`` when ``limit`` is not given."""

FETCH_PAGE_MAX: Final = 500
"""The largest ``limit`` a fetch may ask for."""

PREKEYS_LOW: Final = 10
"""A device whose stock of either one-time pool is below this is told to upload more."""

# ----------------------------------------------------------------------------- authentication

AUTH_WINDOW_MS: Final = 300_000
"""A signed request's timestamp must be within this many milliseconds of the server clock."""

HEADER_MAX_LEN: Final = 256
"""Characters of one ``X-Overt-*`` authentication header."""

REPLAY_CACHE_MAX: Final = 200_000
"""Signatures remembered for replay detection; when full of unexpired entries the server
refuses new signed requests (429) rather than forget one early."""

# ----------------------------------------------------------------------------- rate

RATE_BURST: Final = 200
"""Requests a device may make at once (the token bucket's size)."""

RATE_PER_SECOND: Final = 50.0
"""Sustained requests per second and device (the bucket's refill rate)."""

RATE_TRACKED_MAX: Final = 100_000
"""Devices whose buckets are kept in memory per node; the least recently seen go first."""

# ----------------------------------------------------------------------------- WebSocket

WS_MESSAGE_MAX: Final = 64 * 1024
"""Bytes of one client → server WebSocket message (uvicorn's ``ws_max_size`` too)."""

WS_AUTH_TIMEOUT_S: Final = 30.0
"""Seconds a new WebSocket has to answer the challenge."""

WS_NONCE_LEN: Final = 32
"""Bytes of the WebSocket challenge nonce."""


# ----------------------------------------------------------------------------- groups

MAX_GROUP_UPDATE_LEN: Final = 256 * 1024
"""Bytes of one encoded membership update (1024 accounts with 8192 devices take ~170 KiB)."""

MAX_GROUP_MESSAGE_LEN: Final = MAX_ENVELOPE_LEN
"""Bytes of one encoded group message: as one envelope (large content travels as an
attachment)."""

MAX_GROUP_FANOUT_BYTES: Final = 64 * 1024 * 1024
"""Bytes one group send may store in all (message size times recipient devices), as much as
a one-to-one send of 256 envelopes of 256 KiB: a group of 8192 devices sends up to 8 KiB."""

GROUP_VIEW_UPDATES_MAX: Final = 64
"""Membership updates one group view carries; ``more`` says to ask again after the last."""

GROUP_VIEW_CACHE_ENTRIES: Final = 1024
"""Parsed current views of groups one node keeps (least recently used forgotten)."""

# ----------------------------------------------------------------------------- transparency log

LOG_POSITION_DIGITS: Final = 18
"""Decimal digits of a tree size or entry index in a query (canonical: no sign, no leading
zero); 10^18 - 1 is far beyond any log and below the store's 2^63 - 1."""

LOG_ENTRIES_PAGE_MAX: Final = 1000
"""Entries one ``GET /v1/log/entries`` returns at most (the log's own page bound)."""

EXPLORER_RECENT_ENTRIES: Final = 20
"""Entries the public explorer page (``GET /log``) lists, newest first."""

CHECKPOINT_INTERVAL_MS: Final = 1000
"""Default time between two checkpointing rounds (sign if the log grew, collect cosignatures)."""

WITNESS_TIMEOUT_MS: Final = 5000
"""How long one checkpointing round waits for one witness; a late witness is asked again
in the next round."""

DEPLOYMENT_FILE_MAX: Final = 256 * 1024
"""Bytes of the deployment configuration file (a signed manifest is at most 60 KiB)."""

KEY_FILE_MAX: Final = 1024
"""Bytes of one key file in the data directory."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The bounds a deployment may tune (tests shrink them to reach them cheaply)."""

    rate_burst: int = RATE_BURST
    rate_per_second: float = RATE_PER_SECOND
    rate_tracked: int = RATE_TRACKED_MAX
    replay_cache: int = REPLAY_CACHE_MAX
    auth_window_ms: int = AUTH_WINDOW_MS

    def __post_init__(self) -> None:
        if (
            self.rate_burst < 1
            or self.rate_per_second <= 0
            or self.rate_tracked < 1
            or self.replay_cache < 1
            or self.auth_window_ms < 1
        ):
            raise ConfigurationError("server limits must be positive")


#: How often the server logs the unsealing of warrants past their notification date (seconds).
UNSEAL_INTERVAL_S: Final = 5.0
