"""Signed requests: who is asking, checked before anything else happens.

Every request of a device carries three headers (docs/api.md, "Authentication")::

    X-Overt-Device:    <b64 account>:<device id>
    X-Overt-Timestamp: <unix time in milliseconds>
    X-Overt-Signature: b64(Ed25519(device key, "Overt_Request_v1\\n" METHOD "\\n" PATH_AND_QUERY
                                   "\\n" TIMESTAMP "\\n" hex(SHA-256(body))))

:class:`Authenticator` checks, in this order: the headers parse; the timestamp is within the
window of the injected clock; the device is listed by its account (its key comes from the
:class:`~overt.storage.AccountStore` — in the server, the per-node cache of
:mod:`overt.server.cache`, so a device removed through *another* node still authenticates here
for up to :data:`~overt.server.cache.DEVICE_CACHE_TTL_S`); the signature verifies; the signed
message was not seen before inside the window (:class:`ReplayCache`, entries only added after
the signature verified, so forgeries cannot fill it); the device has tokens left
(:class:`RateLimiter`).
Every failure of the first five is the same :class:`~overt.server.errors.Unauthenticated`
(401); the last is :class:`~overt.server.errors.RateLimited` (429).

The WebSocket handshake signs ``"Overt_WS_v1\\n" nonce_b64 "\\n" timestamp`` over a fresh
server nonce instead, so it needs no replay cache.

Replay cache and rate buckets are in memory, per node: with several nodes behind one
deployment a request could be replayed once per node inside the window (a shared cache, e.g.
Redis ``SET NX``, closes that).

This module knows no web framework (it takes method, target, headers and body as values), no
SQL and no envelopes. Time comes only from the injected clock.
"""

from __future__ import annotations

import heapq
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from overt.crypto import Ed25519PublicKey, sha256
from overt.errors import DecodeError, InvalidMessage
from overt.server.codec import b64decode, parse_address
from overt.server.errors import Malformed, RateLimited, Unauthenticated
from overt.server.limits import HEADER_MAX_LEN, ServerLimits
from overt.storage import AccountStore
from overt.wire import Address

Clock = Callable[[], int]
"""Milliseconds since the Unix epoch."""

DEVICE_HEADER: Final = "x-overt-device"
TIMESTAMP_HEADER: Final = "x-overt-timestamp"
SIGNATURE_HEADER: Final = "x-overt-signature"

REQUEST_LABEL: Final = b"Overt_Request_v1\n"
WS_LABEL: Final = b"Overt_WS_v1\n"

_TIMESTAMP_TEXT: Final = re.compile(r"[0-9]{1,16}")
_REPLAYED: Final = "this request was already seen: sign every request afresh with a new timestamp"
_BAD_SIGNATURE: Final = (
    "unknown device or wrong signature: sign with the key your account's device list names"
)


def request_message(method: str, target: bytes, timestamp: str, body: bytes) -> bytes:
    """The bytes a device signs for one HTTP request (``target`` = raw path and query)."""
    return b"".join(
        (
            REQUEST_LABEL,
            method.encode("ascii"),
            b"\n",
            target,
            b"\n",
            timestamp.encode("ascii"),
            b"\n",
            sha256(body).hex().encode("ascii"),
        )
    )


def ws_message(nonce_b64: str, timestamp: int) -> bytes:
    """The bytes a device signs to answer a WebSocket challenge."""
    return WS_LABEL + nonce_b64.encode("ascii") + b"\n" + str(timestamp).encode("ascii")


def device_hash(address: Address) -> str:
    """A short, stable pseudonym of a device for logs (never the address itself)."""
    return sha256(b"Overt_LogPseudonym_v1" + address.encode()).hex()[:16]


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The authentication headers of one request, parsed but not yet checked."""

    device: Address
    timestamp_text: str
    timestamp: int
    signature: bytes


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The three ``X-Overt-*`` headers; :class:`Unauthenticated` if any is missing or wrong."""
    device = headers.get(DEVICE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if device is None or timestamp is None or signature is None:
        raise Unauthenticated(
            "this request must be signed: send X-Overt-Device, X-Overt-Timestamp and "
            "X-Overt-Signature"
        )
    if max(len(device), len(timestamp), len(signature)) > HEADER_MAX_LEN:
        raise Unauthenticated("an authentication header is too long")
    if not _TIMESTAMP_TEXT.fullmatch(timestamp):
        raise Unauthenticated("X-Overt-Timestamp must be Unix time in milliseconds")
    try:
        address = parse_address(device, "X-Overt-Device")
        raw_signature = b64decode(signature, "X-Overt-Signature")
    except Malformed as e:
        raise Unauthenticated(str(e)) from None
    return SignedHeaders(address, timestamp, int(timestamp), raw_signature)


class ReplayCache:
    """Signed messages seen inside the window, bounded in number.

    Keys are hashes of (device, signed message); each is kept until its own timestamp leaves
    the window, after which the window check alone refuses it. When the cache is full of
    unexpired entries it refuses new requests (fail closed) instead of forgetting one early.
    """

    def __init__(self, max_entries: int, window_ms: int) -> None:
        self._max = max_entries
        self._window = window_ms
        self._expiry: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now_ms: int) -> None:
        while self._heap and self._heap[0][0] < now_ms:
            expiry, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expiry:
                del self._expiry[key]

    def add(self, key: bytes, timestamp_ms: int, now_ms: int) -> None:
        """Remember ``key``; :class:`Unauthenticated` if it is already remembered."""
        self._purge(now_ms)
        if key in self._expiry:
            raise Unauthenticated(_REPLAYED)
        if len(self._expiry) >= self._max:
            wait_ms = self._heap[0][0] - now_ms if self._heap else 1000
            raise RateLimited("the server is busy: retry shortly", -(-wait_ms // 1000))
        expiry = timestamp_ms + self._window
        self._expiry[key] = expiry
        heapq.heappush(self._heap, (expiry, key))


class RateLimiter:
    """A token bucket per device (or any key), in memory, least recently used evicted."""

    def __init__(self, burst: int, per_second: float, max_tracked: int) -> None:
        self._burst = float(burst)
        self._per_ms = per_second / 1000.0
        self._max = max_tracked
        self._buckets: OrderedDict[bytes, tuple[float, int]] = OrderedDict()

    def take(self, key: bytes, now_ms: int, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens of ``key``'s bucket; :class:`RateLimited` if there are too few."""
        tokens, last = self._buckets.pop(key, (self._burst, now_ms))
        tokens = min(self._burst, tokens + max(0, now_ms - last) * self._per_ms)
        if tokens < cost:
            self._buckets[key] = (tokens, now_ms)
            wait_ms = (cost - tokens) / self._per_ms
            raise RateLimited(
                "too many requests from this device: slow down and retry after the given seconds",
                int(-(-wait_ms // 1000)),
            )
        self._buckets[key] = (tokens - cost, now_ms)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


class Authenticator:
    """Checks signed requests against the devices' keys in the account store."""

    def __init__(self, accounts: AccountStore, clock: Clock, limits: ServerLimits) -> None:
        self._accounts = accounts
        self._clock = clock
        self._window = limits.auth_window_ms
        self._replay = ReplayCache(limits.replay_cache, limits.auth_window_ms)
        self._rate = RateLimiter(limits.rate_burst, limits.rate_per_second, limits.rate_tracked)

    def _check_time(self, timestamp_ms: int) -> int:
        now = self._clock()
        if abs(now - timestamp_ms) > self._window:
            raise Unauthenticated(
                "the request timestamp is too far from the server's clock: check the device's "
                "clock and sign again"
            )
        return now

    @staticmethod
    def _verify(key: bytes, signature: bytes, message: bytes) -> None:
        try:
            Ed25519PublicKey.from_bytes(key).verify(signature, message)
        except (InvalidMessage, DecodeError):
            raise Unauthenticated(_BAD_SIGNATURE) from None

    async def authenticate(
        self, method: str, target: bytes, headers: Mapping[str, str], body: bytes
    ) -> Address:
        """The device that signed this request, after every check; rate tokens are spent."""
        signed = parse_headers(headers)
        self._check_time(signed.timestamp)
        key = await self._accounts.device_auth_key(signed.device.account, signed.device.device)
        if key is None:
            raise Unauthenticated(_BAD_SIGNATURE)
        message = request_message(method, target, signed.timestamp_text, body)
        self._verify(key, signed.signature, message)
        now = self._check_time(signed.timestamp)  # the store lookup may have taken a while
        self._replay.add(sha256(signed.device.encode() + message), signed.timestamp, now)
        self._rate.take(signed.device.encode(), now)
        return signed.device

    def authenticate_with_key(
        self,
        signed: SignedHeaders,
        method: str,
        target: bytes,
        body: bytes,
        key: bytes,
    ) -> Address:
        """Check a request signed by a device not yet stored (registration), with its key."""
        now = self._check_time(signed.timestamp)
        message = request_message(method, target, signed.timestamp_text, body)
        self._verify(key, signed.signature, message)
        self._replay.add(sha256(signed.device.encode() + message), signed.timestamp, now)
        return signed.device

    async def authenticate_ws(
        self, device: str, timestamp: int, signature: bytes, nonce_b64: str
    ) -> Address:
        """The device that answered the WebSocket challenge ``nonce_b64``."""
        try:
            address = parse_address(device, "device")
        except Malformed as e:
            raise Unauthenticated(str(e)) from None
        now = self._check_time(timestamp)
        key = await self._accounts.device_auth_key(address.account, address.device)
        if key is None:
            raise Unauthenticated(_BAD_SIGNATURE)
        self._verify(key, signature, ws_message(nonce_b64, timestamp))
        self._rate.take(address.encode(), now)
        return address

    def spend(self, device: Address, cost: float = 1.0) -> None:
        """Charge ``device`` for work outside a signed request (WebSocket acknowledgements)."""
        self._rate.take(device.encode(), self._clock(), cost)
