"""Real devices, a fake relay that attaches real reporting tags, and report builders."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from overt.crypto import DeterministicRng, seal, sha256
from overt.protocol import Device, franking
from overt.safety import (
    ATTACHMENT_AD,
    ATTACHMENT_LABEL,
    AttachmentRef,
    BodyKind,
    MessageBody,
    Report,
    ReportedMessage,
    RevealedAttachment,
)
from overt.wire import Envelope

SERVER_KEY = bytes(range(32))
SENT_MS = 1_700_000_000_000
NOW_MS = SENT_MS + 60_000


@dataclass
class World:
    """alice (the sender), bob with two devices (the reporter), carol (someone else)."""

    alice: Device
    bob: Device
    bob2: Device
    carol: Device
    next_server_id: int = 1000
    clock_ms: int = SENT_MS
    server_key: bytes = field(default=SERVER_KEY, repr=False)

    @classmethod
    def make(cls, seed: int = 1) -> World:
        def dev(account: bytes, device: int, n: int) -> Device:
            return Device.create(
                account,
                device,
                rng=DeterministicRng(seed * 100 + n),
                one_time_prekeys=2,
                kem_one_time_prekeys=1,
            )

        w = cls(dev(b"alice", 1, 1), dev(b"bob", 1, 2), dev(b"bob", 2, 3), dev(b"carol", 1, 4))
        for peer in (w.bob, w.bob2, w.carol):
            w.alice.start_session(peer.prekey_bundle())
        return w

    def deliver(self, sender: Device, recipient: Device, body: bytes) -> ReportedMessage:
        """Encrypt, relay over the wire with a real tag, decrypt: what ``recipient`` can report."""
        self.clock_ms += 1000
        env = sender.encrypt(recipient.address, body, now_ms=self.clock_ms)
        return self._relay(recipient, env)

    def deliver_fanout(
        self, sender: Device, recipients: list[Device], body: bytes
    ) -> list[ReportedMessage]:
        self.clock_ms += 1000
        cid = b"\x07" * 32
        _, envs = sender.encrypt_fanout(
            [r.address for r in recipients], body, now_ms=self.clock_ms, conversation_id=cid
        )
        return [self._relay(r, e) for r, e in zip(recipients, envs, strict=True)]

    def _relay(self, recipient: Device, env: Envelope) -> ReportedMessage:
        env = Envelope.decode(env.encode())
        server_id, server_time = self.next_server_id, self.clock_ms + 7
        self.next_server_id += 1
        tag = franking.reporting_tag(
            self.server_key,
            env.franking_commitment,
            env.sender,
            env.recipient,
            server_id,
            server_time,
        )
        got = recipient.decrypt(env)
        return ReportedMessage.from_delivery(
            env,
            franking_key=got.franking_key,
            body=got.body,
            server_id=server_id,
            server_time_ms=server_time,
            reporting_tag=tag,
        )

    def text(self, sender: Device, recipient: Device, text: str) -> ReportedMessage:
        body = MessageBody(BodyKind.TEXT, recipient.address.account, text).encode()
        return self.deliver(sender, recipient, body)

    def attachment(
        self,
        sender: Device,
        recipient: Device,
        data: bytes,
        *,
        key: bytes = b"\x42" * 32,
        reveal: str = "both",
        file_name: str = "picture.png",
    ) -> ReportedMessage:
        """An attachment message; ``reveal`` is "both", "ciphertext", "plaintext" or "none"."""
        ct = seal(key, data, ATTACHMENT_AD, ATTACHMENT_LABEL)
        ref = AttachmentRef(
            b"blob-" + sha256(ct)[:8],
            key,
            len(data),
            sha256(data),
            sha256(ct),
            "image/png",
            file_name,
        )
        body = MessageBody(BodyKind.ATTACHMENT, recipient.address.account, "look", ref).encode()
        msg = self.deliver(sender, recipient, body)
        revealed = {
            "both": RevealedAttachment(key, ct, data),
            "ciphertext": RevealedAttachment(key, ct, None),
            "plaintext": RevealedAttachment(key, None, data),
            "none": None,
        }[reveal]
        return dataclasses.replace(msg, attachment=revealed)


def report(reporter: Device, *messages: ReportedMessage, comment: str = "") -> Report:
    return Report(reporter.address, tuple(messages), comment)
