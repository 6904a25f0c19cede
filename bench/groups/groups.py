"""Group ``groups``: one message to a group of N member devices, and a membership change
(issue 7's benchmark), with N pairwise one-to-one envelopes as the peer (``one-to-one``).

For each size N (``sizes``, default 10, 100 and 1,000 member devices: N accounts of one device
each; device ``m0000`` sends and administers, ``m0001`` is the recipient whose decryption is
timed), untimed setup makes the N devices (:class:`overt.protocol.Device`), a steady-state
pairwise session between the sender and every other device (each has answered once), the
group (:func:`overt.protocol.groups.create_group`), every member's sender key held by the
recipient, and the sender's key. Then, per repetition (medians reported):

* ``send-N`` — sender CPU per message: :func:`~overt.protocol.groups.group_encrypt` + encoding,
  over ``messages`` 100-byte messages; ``one-to-one``: N−1 ``Device.encrypt`` + encoding, one
  envelope per other device, over ``peer_messages`` messages. ``wire_bytes_per_message`` is
  what the sender uploads (one group message, or N−1 envelopes).
* ``decrypt-N`` — the recipient's CPU per message: :func:`~overt.protocol.groups.group_decrypt`
  against ``Device.decrypt`` of its own envelope (every plaintext compared with what was sent).
* ``fanout-server-N`` — the relay's fan-out of one message to the N−1 other devices, through
  its routes in process (``create_app`` over SQLite in WAL mode with ``synchronous=FULL``, called
  through ``httpx.ASGITransport``, no sockets): every account registered, the group stored with
  ``PUT /v1/groups/{id}``, then the time of ``POST /v1/groups/{id}/messages`` (request
  signature check, the view and device checks, one reporting tag per recipient, one enqueue
  transaction, wake-ups, signals) against ``POST /v1/messages`` with the N−1 envelopes, in as
  many requests as ``MAX_ENVELOPES_PER_SEND`` (256) requires (``requests``). ``fanouts`` sends
  per repetition and impl, interleaved. Skipped (with a progress line) if the server has no
  group routes.
* ``fanout-storage-N`` — the same fan-out *below HTTP*, on the storage directly: decode the
  message (one group message, or the N−1 envelopes), one reporting tag per recipient device
  (:func:`overt.protocol.franking.reporting_tag`, as the send services compute it) and one
  enqueue transaction of N−1 mails into a fresh SQLite database (``overt.storage.open_sqlite``).
* ``membership-remove-N`` — removing one member (a device leaves, so every remaining device
  makes a new sender key): the admin's ``propose_membership`` + ``apply_membership`` and the
  update sent pairwise to the N−2 remaining other devices (``admin_ms``); one remaining device's
  rekey, ``create_sender_key`` and its distribution sent pairwise to the N−2 others
  (``device_send_ms``); one device's receiving side, the update's pairwise decryption and
  ``apply_membership``, then the N−2 distributions' pairwise decryptions and
  ``process_distribution`` (``device_receive_ms``). ``pairwise_encryptions`` counts the whole
  change over all devices, (N−2) + (N−1)(N−2), and ``total_cpu_s`` estimates its CPU over all
  devices as ``admin + (N−1)·(send + receive)`` from the measured parts.

Every timed section runs with the cyclic GC paused. Ratio rows ``speedup_vs_one-to-one`` are the
one-to-one value divided by the group's (above 1: the group is cheaper).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.core import OVERT, SPEEDUP_PREFIX, BenchError, Context, Group, Row, median
from bench.impls import bodies, paused_gc

NAME: Final = "groups"
PEER: Final = "one-to-one"
DEFAULT_SIZES: Final = "10,100,1000"
DEFAULT_MESSAGES: Final = 200
DEFAULT_PEER_MESSAGES: Final = 20
DEFAULT_FANOUTS: Final = 10
DEFAULT_REPEATS: Final = 5
DEFAULT_SEED: Final = 1
MIN_SIZE: Final = 3
"""A sender, the timed recipient and a member to remove."""
SERVER_FRANKING_KEY: Final = bytes(range(32))


def _address(i: int) -> bytes:
    return f"m{i:04d}".encode()


@dataclass
class _Setup:
    n: int
    rng: Any
    identities: list[Any]  # AccountIdentity of every account; [0] is the admin's (the hub's)
    create_update: Any  # the MembershipUpdate that made the group
    hub: Any  # the sending and administering Device
    others: list[Any]  # the other N-1 Devices; others[0] is the timed recipient
    hub_state: Any  # GroupState
    recipient_state: Any
    sender_key: Any
    admin_keys: dict[bytes, Any]
    now: int = 100

    @property
    def admin(self) -> Any:
        return self.identities[0]


def _setup(n: int, seed: int) -> _Setup:
    from overt.crypto import DeterministicRng  # noqa: PLC0415
    from overt.protocol import Device  # noqa: PLC0415
    from overt.protocol.groups import (  # noqa: PLC0415
        GroupState,
        create_group,
        create_sender_key,
        join_group,
        process_distribution,
    )
    from overt.protocol.identity import AccountIdentity  # noqa: PLC0415

    rng = DeterministicRng(seed)

    def device(i: int) -> Any:
        return Device.create(_address(i), 1, rng=rng, one_time_prekeys=1, kem_one_time_prekeys=1)

    hub = device(0)
    others = [device(i) for i in range(1, n)]
    for i, other in enumerate(others):  # steady-state pairwise sessions, both directions used
        env = hub.encrypt(other.address, b"hello", now_ms=1, rng=rng, bundle=other.prekey_bundle())
        other.decrypt(env, now_ms=2)
        hub.decrypt(other.encrypt(hub.address, b"hi", now_ms=3, rng=rng), now_ms=4 + i)
    identities = [AccountIdentity.generate(_address(i), rng) for i in range(n)]
    admin = identities[0]
    admin_keys = {admin.account: admin.public_key}
    members = {_address(i): [1] for i in range(n)}
    hub_state, update = create_group(admin, hub.address, b"bench group", members, rng)
    recipient = others[0]
    recipient_state = join_group(recipient.address, update, admin_keys)
    sender_key, dist = create_sender_key(hub_state, rng)
    recipient_state = process_distribution(recipient_state, hub.address, dist)
    for other in others[1:]:  # the recipient holds every member's sender key
        _, theirs = create_sender_key(GroupState(other.address, hub_state.membership), rng)
        recipient_state = process_distribution(recipient_state, other.address, theirs)
    return _Setup(
        n, rng, identities, update, hub, others, hub_state, recipient_state, sender_key, admin_keys
    )


# ----------------------------------------------------------------------------- messages


@dataclass
class _Samples:
    values: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    counts: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def add(self, case: str, impl: str, metric: str, value: float) -> None:
        self.values.setdefault((case, impl, metric), []).append(value)

    def count(self, case: str, impl: str, metric: str, value: float) -> None:
        self.counts[case, impl, metric] = self.counts.get((case, impl, metric), 0) + value


def _group_messages(s: _Setup, messages: int, out: _Samples) -> None:
    from overt.protocol.groups import group_decrypt, group_encrypt  # noqa: PLC0415

    texts = bodies(messages)
    key, state, rng = s.sender_key, s.hub_state, s.rng
    sent: list[bytes] = []
    with paused_gc():
        start = time.perf_counter()
        for body in texts:
            s.now += 1
            msg, key = group_encrypt(state, key, body, s.now, rng, None)
            sent.append(msg.encode())
        sender_s = time.perf_counter() - start
    s.sender_key = key
    verified = 0
    r_state = s.recipient_state
    with paused_gc():
        start = time.perf_counter()
        for data, body in zip(sent, texts, strict=True):
            got, r_state = group_decrypt(r_state, data, None)
            verified += got.body == body
        recipient_s = time.perf_counter() - start
    s.recipient_state = r_state
    n = s.n
    out.add(f"send-{n}", OVERT, "sender_us_per_message", sender_s / messages * 1e6)
    out.add(f"decrypt-{n}", OVERT, "recipient_us_per_message", recipient_s / messages * 1e6)
    out.counts[f"send-{n}", OVERT, "wire_bytes_per_message"] = len(sent[-1])
    out.count(f"decrypt-{n}", OVERT, "verified_messages", verified)
    if verified != messages:
        raise BenchError(f"group of {n}: {verified}/{messages} messages decrypted right")


def _pairwise_messages(s: _Setup, messages: int, out: _Samples) -> None:
    texts = bodies(messages)
    hub, rng = s.hub, s.rng
    encrypt = hub.encrypt
    targets = [o.address for o in s.others]
    to_recipient: list[Any] = []
    wire = 0
    with paused_gc():
        start = time.perf_counter()
        for body in texts:
            s.now += 1
            sizes = 0
            for k, to in enumerate(targets):
                env = encrypt(to, body, now_ms=s.now, rng=rng)
                sizes += len(env.encode())
                if k == 0:
                    to_recipient.append(env)
            wire = sizes
        sender_s = time.perf_counter() - start
    recipient = s.others[0]
    verified = 0
    with paused_gc():
        start = time.perf_counter()
        for env, body in zip(to_recipient, texts, strict=True):
            verified += recipient.decrypt(env, now_ms=s.now).body == body
        recipient_s = time.perf_counter() - start
    n = s.n
    out.add(f"send-{n}", PEER, "sender_us_per_message", sender_s / messages * 1e6)
    out.add(f"decrypt-{n}", PEER, "recipient_us_per_message", recipient_s / messages * 1e6)
    out.counts[f"send-{n}", PEER, "wire_bytes_per_message"] = wire
    out.count(f"decrypt-{n}", PEER, "verified_messages", verified)
    if verified != messages:
        raise BenchError(f"one-to-one, {n} devices: {verified}/{messages} decrypted right")


# ----------------------------------------------------------------------------- fan-out


def _fanout_batches(s: _Setup, fanouts: int) -> tuple[list[bytes], list[list[bytes]]]:
    """``fanouts`` group messages, and as many sets of N−1 one-to-one envelopes (untimed)."""
    from overt.protocol.groups import group_encrypt  # noqa: PLC0415

    group: list[bytes] = []
    pairwise: list[list[bytes]] = []
    body = bodies(1)[0]
    for _ in range(fanouts):
        s.now += 1
        msg, s.sender_key = group_encrypt(s.hub_state, s.sender_key, body, s.now, s.rng, None)
        group.append(msg.encode())
        pairwise.append(
            [s.hub.encrypt(o.address, body, now_ms=s.now, rng=s.rng).encode() for o in s.others]
        )
    return group, pairwise


async def _fanout(s: _Setup, fanouts: int, db: Path, out: _Samples) -> None:
    from overt import storage as storage_module  # noqa: PLC0415
    from overt.protocol.franking import reporting_tag  # noqa: PLC0415
    from overt.storage import NewMail, open_sqlite  # noqa: PLC0415
    from overt.wire import Address, Envelope  # noqa: PLC0415
    from overt.wire.group_messages import GroupMessage  # noqa: PLC0415

    mail_kind = getattr(storage_module, "MailKind", None)
    group_kind: dict[str, Any] = {} if mail_kind is None else {"kind": mail_kind.GROUP}
    group, pairwise = _fanout_batches(s, fanouts)
    sender = s.hub.address
    recipients = [o.address for o in s.others]
    key = SERVER_FRANKING_KEY
    store = await open_sqlite(db)
    try:
        mailboxes = store.mailboxes

        async def fan_group(data: bytes) -> float:
            start = time.perf_counter()
            msg = GroupMessage.decode(data)
            commitment = msg.franking_commitment
            batch = [
                NewMail(r.account, r.device, sender.account, sender.device, data, **group_kind)
                for r in recipients
            ]
            server_time = int(time.time() * 1000)

            def tag(server_id: int, mail: Any) -> bytes:
                to = Address(mail.recipient_account, mail.recipient_device)
                return reporting_tag(key, commitment, sender, to, server_id, server_time)

            ids = await mailboxes.enqueue(batch, server_time, tag)
            seconds = time.perf_counter() - start
            if len(ids) != len(recipients):
                raise BenchError("group fan-out: not every recipient got the mail")
            return seconds

        async def fan_pairwise(envelopes: list[bytes]) -> float:
            start = time.perf_counter()
            decoded = [Envelope.decode(e) for e in envelopes]
            commitments = {e.recipient: e.franking_commitment for e in decoded}
            batch = [
                NewMail(e.recipient.account, e.recipient.device, sender.account, sender.device, d)
                for e, d in zip(decoded, envelopes, strict=True)
            ]
            server_time = int(time.time() * 1000)

            def tag(server_id: int, mail: Any) -> bytes:
                to = Address(mail.recipient_account, mail.recipient_device)
                return reporting_tag(key, commitments[to], sender, to, server_id, server_time)

            ids = await mailboxes.enqueue(batch, server_time, tag)
            seconds = time.perf_counter() - start
            if len(ids) != len(recipients):
                raise BenchError("one-to-one fan-out: not every recipient got the mail")
            return seconds

        group_s: list[float] = []
        pairwise_s: list[float] = []
        with paused_gc():
            for data, envelopes in zip(group, pairwise, strict=True):  # interleaved
                group_s.append(await fan_group(data))
                pairwise_s.append(await fan_pairwise(envelopes))
    finally:
        await store.close()
    n = s.n
    case = f"fanout-storage-{n}"
    out.add(case, OVERT, "fanout_ms", median(group_s) * 1e3)
    out.add(case, PEER, "fanout_ms", median(pairwise_s) * 1e3)
    out.counts[case, OVERT, "stored_bytes"] = len(group[0]) * len(recipients)
    out.counts[case, PEER, "stored_bytes"] = sum(len(e) for e in pairwise[0])
    out.counts[case, OVERT, "recipients"] = len(recipients)


class _NoRoute(Exception):
    """The server has no group routes (yet): only the storage fan-out is measured."""


async def _fanout_server(
    ctx: Context, s: _Setup, fanouts: int, repeats: int, db: Path, out: _Samples
) -> None:
    """The same fan-outs through the relay's send routes, in process (ASGI) over SQLite."""
    import httpx  # noqa: PLC0415

    from overt.client._api import prekey_upload  # noqa: PLC0415
    from overt.client.clock import SystemClock  # noqa: PLC0415
    from overt.client.transport import RequestSigner  # noqa: PLC0415
    from overt.crypto import SystemRng  # noqa: PLC0415
    from overt.server import ServerConfig, ServerLimits, create_app  # noqa: PLC0415
    from overt.server.codec import b64encode  # noqa: PLC0415
    from overt.server.limits import MAX_ENVELOPES_PER_SEND  # noqa: PLC0415
    from overt.storage import InProcessPubSub, open_sqlite  # noqa: PLC0415

    storage = await open_sqlite(db)
    limits = ServerLimits(rate_burst=10**6, rate_per_second=1e6, replay_cache=2_000_000)
    app = create_app(
        ServerConfig(SERVER_FRANKING_KEY, limits), storage, InProcessPubSub(), rng=SystemRng()
    )
    clock = SystemClock()
    devices = [s.hub, *s.others]
    signers = [RequestSigner(d.address, d.identity.sign, clock) for d in devices]
    hub_signer = signers[0]

    def payload(value: object) -> bytes:
        import json  # noqa: PLC0415

        return json.dumps(value, separators=(",", ":")).encode()

    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://overt.bench") as http:

            def signed(signer: Any, method: str, target: str, body: bytes) -> dict[str, str]:
                headers: dict[str, str] = signer.headers(method, target, body)
                return {**headers, "Content-Type": "application/json"}

            async def call(signer: Any, method: str, target: str, body: bytes) -> httpx.Response:
                headers = signed(signer, method, target, body)
                return await http.request(method, target, content=body, headers=headers)

            async def register(i: int) -> None:
                device, identity = devices[i], s.identities[i]
                stock = device.prekeys
                body = payload({
                    "account": b64encode(identity.account),
                    "signed_device_list": b64encode(
                        identity.sign_device_list(1, [device.entry()]).encode()
                    ),
                    "prekeys": prekey_upload(
                        stock.signed[stock.current_signed][1],
                        stock.kem[stock.last_resort_kem][1],
                        [pub for _, pub in stock.one_time.values()],
                        [pub for _, pub in stock.kem.values() if not pub.last_resort],
                    ),
                })  # fmt: skip
                answer = await call(signers[i], "POST", "/v1/accounts", body)
                if answer.status_code != 201:
                    raise BenchError(f"registering {i}: {answer.status_code} {answer.text[:200]}")

            for start in range(0, s.n, 50):  # concurrent registrations share group commits
                await asyncio.gather(*(register(i) for i in range(start, min(start + 50, s.n))))
            group_id = b64encode(s.hub_state.group_id)
            body = payload({"membership": b64encode(s.create_update.encode())})
            answer = await call(hub_signer, "PUT", f"/v1/groups/{group_id}", body)
            if answer.status_code in (404, 405):
                raise _NoRoute(f"PUT /v1/groups answered {answer.status_code}")
            if answer.status_code != 200:
                raise BenchError(f"creating the group: {answer.status_code} {answer.text[:300]}")
            ctx.progress(f"{s.n} devices: accounts registered and the group stored in process")

            recipients = {o.address for o in s.others}
            for rep in range(1, repeats + 1):
                group, pairwise = _fanout_batches(s, fanouts)
                group_s: list[float] = []
                pairwise_s: list[float] = []
                requests = 0
                for data, envelopes in zip(group, pairwise, strict=True):
                    target = f"/v1/groups/{group_id}/messages"
                    body = payload({"message": b64encode(data)})
                    headers = signed(hub_signer, "POST", target, body)
                    with paused_gc():
                        start = time.perf_counter()
                        answer = await http.post(target, content=body, headers=headers)
                        group_s.append(time.perf_counter() - start)
                    if answer.status_code != 200:
                        raise BenchError(f"group send: {answer.status_code} {answer.text[:300]}")
                    sent = answer.json()
                    if len(sent["ids"]) != len(recipients) or sent["devices_changed"]:
                        raise BenchError(f"group send reached {len(sent['ids'])} devices")
                    bodies_ = []
                    for k in range(0, len(envelopes), MAX_ENVELOPES_PER_SEND):
                        chunk = envelopes[k : k + MAX_ENVELOPES_PER_SEND]
                        accounts = s.others[k : k + MAX_ENVELOPES_PER_SEND]
                        bodies_.append(payload({
                            "recipients": {b64encode(o.address.account): [1] for o in accounts},
                            "envelopes": [b64encode(e) for e in chunk],
                        }))  # fmt: skip
                    requests = len(bodies_)
                    signed_bodies = [
                        (b, signed(hub_signer, "POST", "/v1/messages", b)) for b in bodies_
                    ]
                    reached = 0
                    with paused_gc():
                        start = time.perf_counter()
                        for b, headers in signed_bodies:
                            answer = await http.post("/v1/messages", content=b, headers=headers)
                            if answer.status_code != 200:
                                raise BenchError(
                                    f"one-to-one send: {answer.status_code} {answer.text[:300]}"
                                )
                            reached += len(answer.json()["ids"])
                        pairwise_s.append(time.perf_counter() - start)
                    if reached != len(recipients):
                        raise BenchError(f"one-to-one sends reached {reached} devices")
                case = f"fanout-server-{s.n}"
                out.add(case, OVERT, "fanout_ms", median(group_s) * 1e3)
                out.add(case, PEER, "fanout_ms", median(pairwise_s) * 1e3)
                out.counts[case, PEER, "requests"] = requests
                out.counts[case, OVERT, "requests"] = 1
                out.counts[case, OVERT, "recipients"] = len(recipients)
                ctx.progress(
                    f"rep {rep}/{repeats} {s.n} devices through the server: group "
                    f"{median(group_s) * 1e3:.1f} ms, one-to-one {median(pairwise_s) * 1e3:.1f} "
                    f"ms in {requests} request(s)"
                )
        await app.state.background.wait()
    finally:
        await storage.close()


# ----------------------------------------------------------------------------- membership


def _remove_member(s: _Setup, out: _Samples) -> None:
    """Remove the last member; time the admin, one device's rekey sending and receiving."""
    from overt.protocol.groups import (  # noqa: PLC0415
        GroupState,
        MembershipUpdate,
        apply_membership,
        create_sender_key,
        needs_rekey,
        process_distribution,
        propose_membership,
    )

    n, hub, rng = s.n, s.hub, s.rng
    removed = s.others[-1]
    remaining = s.others[:-1]  # N-2 devices besides the hub
    members = {_address(i): [1] for i in range(n - 1)}
    s.now += 1
    with paused_gc():
        start = time.perf_counter()
        update = propose_membership(s.hub_state, s.admin, members)
        new_hub = apply_membership(s.hub_state, update, s.admin_keys)
        data = update.encode()
        update_envs = [hub.encrypt(d.address, data, now_ms=s.now, rng=rng) for d in remaining]
        admin_s = time.perf_counter() - start
    if not needs_rekey(s.hub_state, new_hub) or removed.address in new_hub.membership.devices:
        raise BenchError("membership change: the removal did not require a rekey")

    with paused_gc():  # one device's rekey: a new sender key to every other remaining device
        start = time.perf_counter()
        _, dist = create_sender_key(new_hub, rng)
        body = dist.encode()
        dist_envs = [
            hub.encrypt(d.address, body, now_ms=s.now, rng=rng).encode() for d in remaining
        ]
        send_s = time.perf_counter() - start
    if len(dist_envs) != n - 2:
        raise BenchError("membership change: wrong number of distributions")

    # The other remaining devices do the same towards the hub (untimed: same work as above).
    incoming = []
    for d in remaining:
        _, theirs = create_sender_key(
            GroupState(d.address, new_hub.membership, new_hub.version), rng
        )
        incoming.append((d.address, d.encrypt(hub.address, theirs.encode(), now_ms=s.now, rng=rng)))

    recipient = remaining[0]
    with paused_gc():  # one device receiving: the update, then every distribution
        start = time.perf_counter()
        got = recipient.decrypt(update_envs[0], now_ms=s.now)
        applied = apply_membership(
            s.recipient_state, MembershipUpdate.decode(got.body), s.admin_keys
        )
        state = new_hub
        for sender, env in incoming:
            state = process_distribution(state, sender, hub.decrypt(env, now_ms=s.now).body)
        receive_s = time.perf_counter() - start
    if applied.version != new_hub.version or len(state.receivers) != n - 2:
        raise BenchError("membership change: the receiving side did not end in the new view")

    case = f"membership-remove-{n}"
    out.add(case, OVERT, "admin_ms", admin_s * 1e3)
    out.add(case, OVERT, "device_send_ms", send_s * 1e3)
    out.add(case, OVERT, "device_receive_ms", receive_s * 1e3)
    out.add(case, OVERT, "total_cpu_s", admin_s + (n - 1) * (send_s + receive_s))
    out.counts[case, OVERT, "pairwise_encryptions"] = (n - 2) + (n - 1) * (n - 2)


# ----------------------------------------------------------------------------- the group

_UNITS: Final = {
    "sender_us_per_message": "us",
    "recipient_us_per_message": "us",
    "fanout_ms": "ms",
    "admin_ms": "ms",
    "device_send_ms": "ms",
    "device_receive_ms": "ms",
    "total_cpu_s": "s",
    "wire_bytes_per_message": "B",
    "stored_bytes": "B",
    "verified_messages": "msg",
    "recipients": "devices",
    "pairwise_encryptions": "encryptions",
    "requests": "requests",
}
_RATIO_METRIC: Final = {"send": "sender_us_per_message", "decrypt": "recipient_us_per_message",
                        "fanout-storage": "fanout_ms", "fanout-server": "fanout_ms"}  # fmt: skip


def _rows(out: _Samples) -> list[Row]:
    rows = [
        Row(NAME, case, impl, metric, median(values), _UNITS[metric])
        for (case, impl, metric), values in out.values.items()
    ]
    rows += [
        Row(NAME, case, impl, metric, value, _UNITS[metric])
        for (case, impl, metric), value in out.counts.items()
    ]
    medians = {(c, i, m): median(v) for (c, i, m), v in out.values.items()}
    for (case, impl, metric), value in medians.items():
        kind = case.rsplit("-", 1)[0]
        if impl != OVERT or _RATIO_METRIC.get(kind) != metric:
            continue
        peer = medians.get((case, PEER, metric))
        if peer is not None and value > 0:
            rows.append(Row(NAME, case, OVERT, SPEEDUP_PREFIX + PEER, peer / value, "x"))
    return rows


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(p.replace("_", "")) for p in text.split(",") if p.strip()]
    except ValueError:
        raise BenchError(f"--param sizes: not a comma list of integers: {text!r}") from None
    from overt.protocol.limits import MAX_GROUP_MEMBERS  # noqa: PLC0415

    for n in sizes:
        if not MIN_SIZE <= n <= MAX_GROUP_MEMBERS:
            raise BenchError(f"--param sizes: each size is {MIN_SIZE}..{MAX_GROUP_MEMBERS}: {n}")
    if not sizes:
        raise BenchError("--param sizes: nothing to run")
    return sizes


def run(ctx: Context) -> list[Row]:
    sizes = _sizes(ctx.str_param("sizes", DEFAULT_SIZES))
    messages = ctx.int_param("messages", DEFAULT_MESSAGES, env="OVERT_BENCH_MESSAGES")
    peer_messages = ctx.int_param("peer_messages", DEFAULT_PEER_MESSAGES)
    fanouts = ctx.int_param("fanouts", DEFAULT_FANOUTS)
    repeats = ctx.int_param("repeats", DEFAULT_REPEATS, env="OVERT_BENCH_REPEATS")
    seed = ctx.int_param("seed", DEFAULT_SEED, env="OVERT_BENCH_SEED", minimum=0)
    server = ctx.str_param("server", "yes") == "yes"
    out = _Samples()
    with tempfile.TemporaryDirectory(prefix="overt-bench-groups-") as tmp:
        for n in sizes:
            started = time.perf_counter()
            s = _setup(n, seed)
            ctx.progress(f"{n} devices: set up in {time.perf_counter() - started:.1f} s")
            steps: list[tuple[str, Callable[[], None]]] = [
                ("group", lambda s=s: _group_messages(s, messages, out)),
                ("one-to-one", lambda s=s: _pairwise_messages(s, peer_messages, out)),
            ]
            for rep in range(1, repeats + 1):
                for _, step in steps:
                    step()
                steps.reverse()
                db = Path(tmp) / f"fanout-{n}-{rep}.db"
                asyncio.run(_fanout(s, fanouts, db, out))
                _remove_member(s, out)
                ctx.progress(_describe(out, n, rep, repeats))
            if server:
                try:
                    db = Path(tmp) / f"server-{n}.db"
                    asyncio.run(_fanout_server(ctx, s, fanouts, repeats, db, out))
                except _NoRoute as e:
                    server = False
                    ctx.progress(f"no group send route in the server ({e}): storage rows only")
    return _rows(out)


def _describe(out: _Samples, n: int, rep: int, repeats: int) -> str:
    def last(case: str, impl: str, metric: str) -> float:
        return out.values[f"{case}-{n}", impl, metric][-1]

    return (
        f"rep {rep}/{repeats} {n} devices: send {last('send', OVERT, 'sender_us_per_message'):.0f}"
        f" us (1:1 {last('send', PEER, 'sender_us_per_message'):,.0f}), decrypt "
        f"{last('decrypt', OVERT, 'recipient_us_per_message'):.0f} us (1:1 "
        f"{last('decrypt', PEER, 'recipient_us_per_message'):.0f}), storage fan-out "
        f"{last('fanout-storage', OVERT, 'fanout_ms'):.1f} ms (1:1 "
        f"{last('fanout-storage', PEER, 'fanout_ms'):.1f}), removal: admin "
        f"{last('membership-remove', OVERT, 'admin_ms'):.1f} ms, device send "
        f"{last('membership-remove', OVERT, 'device_send_ms'):.1f} + receive "
        f"{last('membership-remove', OVERT, 'device_receive_ms'):.1f} ms"
    )


GROUP = Group(
    name=NAME,
    description="Sender Keys groups of 10, 100 and 1,000 devices vs N pairwise envelopes: "
    "sender CPU, per-recipient decrypt, relay fan-out, membership change",
    run=run,
    order=70,
    parameters={
        "sizes": f"comma list of member-device counts (default {DEFAULT_SIZES})",
        "messages": f"group messages per size and repetition (default {DEFAULT_MESSAGES}; "
        "$OVERT_BENCH_MESSAGES)",
        "peer_messages": f"one-to-one fan-outs per size and repetition (default "
        f"{DEFAULT_PEER_MESSAGES})",
        "fanouts": f"fan-outs (storage, server) per size, repetition and impl (default "
        f"{DEFAULT_FANOUTS})",
        "repeats": f"repetitions; medians reported (default {DEFAULT_REPEATS}; "
        "$OVERT_BENCH_REPEATS)",
        "seed": "DeterministicRng seed (default 1; $OVERT_BENCH_SEED)",
        "server": "yes (default): also fan out through the relay's routes in process; no: "
        "storage only",
    },
)
