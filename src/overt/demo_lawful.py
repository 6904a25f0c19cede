"""`make demo`, lawful-access section: a warrant from court to notice, then an auditor.

A deployment with access policy ``escrow`` on loopback: three custodian processes
(``overt custodian``) that make the epoch key by a distributed key generation, a witness
process, the provider (the relay, in this process, so that the demo can move its unsealing
clock), a court (its tool, as a library) and an agency (the ``overt lea`` library). Two people
message through the client library, which takes the escrow policy from the transparency log;
the court signs a warrant on one of them, the agency serves it, fetches the intercepted
envelopes and opens them with two of the three custodians, and anyone can verify the evidence.
Then the notification date comes — the provider's unsealing runs with the date the warrant
names, instead of waiting days — the target's client shows the notice, and an auditor recounts
the same log: the receipts match the decryptions.

The deployment is started by :mod:`overt.launch_lawful` (as the end-to-end tests and the
``access`` benchmark start theirs). Everything runs in a temporary directory and every process
is stopped at the end, also on failure. :func:`lawful_walkthrough` is the one entry point
(``overt.demo`` calls it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from overt import launch_lawful
from overt.client import Client, HttpTransport
from overt.client.body import Body
from overt.crypto import Ed25519PrivateKey, SystemRng
from overt.errors import DecodeError, LocalError
from overt.services import court as court_tool
from overt.services import lea
from overt.services.custodian_client import run_dkg

CUSTODIANS = 3
THRESHOLD = 2
CHECKPOINT_MS = 200


def _text(body: bytes) -> str:
    try:
        return Body.decode(body).text
    except DecodeError:
        return "(a body this demo does not show)"


async def _until_noticed(client: Client, seconds: float = 20.0) -> None:
    """Read the log until a notice shows (a new entry is public once the provider's next
    checkpoint is cosigned, a fraction of a second here)."""
    deadline = time.monotonic() + seconds
    await client.check_log()
    while not client.notices(new_only=True) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        await client.check_log()


async def lawful_walkthrough(work: Path, say: Callable[[str], None] = print) -> None:
    """The lawful-access section of the demo (see the module docstring)."""
    say("\n== Accountable lawful access: a warrant from court to notice ==")
    rng = SystemRng()
    root = work / "lawful"
    async with contextlib.AsyncExitStack() as stack:
        parties = stack.enter_context(launch_lawful.start_parties(root, CUSTODIANS, rng))
        provider, custodian_urls = parties.provider, parties.custodians
        say(f"{CUSTODIANS} custodians run as separate processes, each with its own key store; "
            f"a witness runs too")  # fmt: skip

        court = court_tool.Court("District Court", Ed25519PrivateKey.generate(rng))
        escrow = parties.escrow(THRESHOLD, [court.named_key])
        lawful, _ = await stack.enter_async_context(
            launch_lawful.serve_provider(
                parties.provider_dir, parties.deployment("lawful.demo", escrow), parties.port,
                checkpoint_ms=CHECKPOINT_MS, rng=rng,
            )
        )  # fmt: skip
        say(f"the provider serves policy 'escrow' at {provider}: its manifest names the "
            f"custodians ({THRESHOLD} of {CUSTODIANS}), the court and the witness")  # fmt: skip

        epoch = launch_lawful.current_epoch(escrow)
        dkg = await run_dkg(epoch, custodian_urls, provider)
        say(f"the custodians ran a distributed key generation for escrow epoch {epoch} "
            f"({dkg.seconds:.2f} s): nobody holds the epoch secret; the provider checked "
            f"their signed transcript and logged the key (log entry {dkg.index})")  # fmt: skip

        transport = HttpTransport(provider)
        stack.push_async_callback(transport.aclose)
        alice = await Client.open(root / "alice", transport)
        stack.push_async_callback(alice.close)
        bob = await Client.open(root / "bob", transport)
        stack.push_async_callback(bob.close)
        await alice.create_account("alice")
        await bob.create_account("bob")
        say(f"alice's and bob's clients show: {await alice.policy_description()}")
        used = await alice.access_epoch()
        if used is None:
            raise LocalError("the clients found no escrow epoch in the log")
        say(f"their clients took the escrow key from the log: epoch {used.epoch}, log entry "
            f"{used.log_index}, proven under a cosigned checkpoint and checked against the "
            "custodians' transcript and every custodian's signed confirmation of it — nobody "
            "passed them a key")  # fmt: skip

        warrant = launch_lawful.warrant_from_today(
            court, [b"alice"], days=2, seal_days=3, cap=10, reference="AUTH-DEMO-1",
            legal_basis="Investigatory Powers Act s.15", judge_reference="J. Doe", rng=rng,
        )  # fmt: skip
        document = court_tool.sign_warrant_file(court, warrant)
        say("the court signed a warrant on alice for today and tomorrow (approved yesterday: "
            "custodians open a message only if its whole UTC day is in the window), sealed "
            "for 3 days")  # fmt: skip
        case_dir = root / "case"
        case = await lea.serve(case_dir, provider, document)
        say(f"the agency served it: the provider logged its commitment first (entry "
            f"{case.index}; the target stays hidden) and now copies alice's envelopes")  # fmt: skip

        await alice.send("bob", "The shipment arrives on Tuesday.")
        await bob.send("alice", "Understood, I will be at the dock.")
        await alice.sync()
        await bob.sync()
        say("alice and bob exchanged two messages; each carries an access field both "
            "clients checked before showing it")  # fmt: skip

        await lea.fetch(case_dir)
        evidence = root / "evidence.bin"
        report = await lea.decrypt(case_dir, custodian_urls, evidence)
        say(f"the agency asked the custodians; each checked the court's signature, the log "
            f"proof, the window and the cap on its own, logged a receipt, and answered with "
            f"a proven share: {report.opened} message(s) opened with {THRESHOLD} of "
            f"{CUSTODIANS} custodians in {report.seconds:.2f} s")  # fmt: skip
        verified = await lea.verify(evidence, provider)
        say(f"anyone can re-check the evidence bundle ({evidence.stat().st_size} bytes): "
            f"{len(verified.messages)} message(s), franking commitments included:")  # fmt: skip
        for m in verified.messages:
            to = "?" if m.recipient is None else m.recipient.account.decode()
            say(f"  {m.sender.account.decode()} → {to}: {_text(m.body)}")

        await alice.check_log()
        say(f"before the notification date alice's client shows {len(alice.notices())} "
            "notice(s): the log says a warrant exists, not whom it names")  # fmt: skip
        unsealed = await lawful.unseal_due(warrant.sealed_until)
        say(f"the notification date comes (the demo runs the provider's unsealing with the "
            f"warrant's date instead of waiting 3 days): the opening is logged at entry "
            f"{unsealed[0]}")  # fmt: skip
        await _until_noticed(alice)
        for notice in alice.notices(new_only=True):
            say(f"alice's client verified the unsealing against the logged commitment and "
                f"shows: {notice.describe()}")  # fmt: skip
        alice.mark_notices_shown()
        await bob.check_log()
        say(f"bob's client shows {len(bob.notices())} notice(s): the warrant did not name him")

        audit, trust, size = await lea.audit_access(provider)
        tally = audit.warrants[warrant.warrant_id]
        say(f"an auditor read the same log ({size} entries, root recomputed): warrant "
            f"unsealed, {tally.receipts} custodian receipt(s), at most "
            f"{tally.messages_bound(trust.threshold)} message(s) decrypted — the agency "
            f"decrypted {report.opened}; {len(audit.flags)} flag(s)")  # fmt: skip
    say("every lawful-access party stopped")


__all__ = ["lawful_walkthrough"]


def main() -> int:
    """This section alone: ``python -m overt.demo_lawful``."""
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="overt-demo-") as tmp:
        asyncio.run(lawful_walkthrough(Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
