"""Accountable lawful access end to end, every party its own process on loopback: five
custodians (``overt custodian``), a witness, and the provider (the relay with the lawful-access
router mounted, ``lawful_provider.py``); the court and the agency are the ``overt court`` and
``overt lea`` command lines; people are real clients sending through the relay.

The module starts the processes once (:mod:`overt.launch_lawful`, as the demo and the
``access`` benchmark do) and runs the DKG among the five custodians with
``overt custodian dkg``; every test then works with warrants of its own. The court approves
the main warrants *yesterday* (the library takes the approval time), because a custodian
opens a message only if its whole UTC day lies inside the window and a warrant may not reach
back before its approval: a warrant approved today opens messages from tomorrow on.

The last test runs a warrant to its notice: two people whose clients are given no policy (they
take the epoch key from the log) message through the ``overt`` CLI, the agency opens their
messages, and once the provider's unsealing clock reaches the notification date
(``lawful_provider.py``'s ``unseal-at`` file) the target's ``overt notices`` shows the notice.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from overt import launch, launch_lawful
from overt.access import AccessItem, AccessRequest, ShareResponse
from overt.access.custodian_policy import GroupMembers
from overt.access.warrant import (
    Approval,
    Authorisation,
    Delivery,
    Task,
    Timespan,
    Warrant,
    new_targets_salt,
    new_warrant_id,
)
from overt.client import Client, HttpTransport
from overt.crypto import Ed25519PrivateKey, Point, SystemRng
from overt.protocol import EscrowPolicy, access
from overt.services import court as court_tool
from overt.services import lea
from overt.services.custodian import load_or_create_keys, read_admin_token
from overt.services.custodian_client import (
    CustodianClient,
    InterceptedEnvelope,
    ProviderClient,
    run_dkg,
)
from overt.services.custodian_wire import b64d, b64e, epoch_span, sign_receipt
from overt.transparency.checkpoint import ProofBundle
from overt.transparency.entries import AccessReceipt
from overt.transparency.manifest import EscrowAccess
from overt.transparency.note import Note
from overt.wire import Envelope
from overt.wire.group_messages import GroupMessage
from overt.wire.jcs import JsonValue

pytestmark = pytest.mark.slow

DAY = 86_400
N, T = 5, 3
E2E_DIR = Path(__file__).parent
COURT_NAME = "District Court"
PYTHONPATH = os.environ.get("PYTHONPATH", "")


@dataclass
class World:
    tmp: Path
    provider: str
    custodians: list[str]
    custodian_dirs: list[Path]
    court: court_tool.Court
    court_dir: Path
    escrow: EscrowAccess
    epoch: int
    policy: EscrowPolicy
    dkg_seconds: float
    dkg_output: str

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    @property
    def peers(self) -> str:
        return ",".join(self.custodians)

    def overt(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return run_overt(self.home, *args, ok=ok)


def run_overt(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if ok:
        assert r.returncode == 0, f"overt {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("lawful")
    court_dir = tmp / "court"
    keygen = subprocess.Popen(  # the court's key is made while the parties start
        [sys.executable, "-m", "overt.cli.main", "court", "keygen", "--data-dir", str(court_dir),
         "--name", COURT_NAME],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    with keygen, launch_lawful.start_parties(tmp, N) as parties:
        said, _ = keygen.communicate(timeout=60)
        assert keygen.returncode == 0 and "court key:" in said, said
        court = court_tool.load(court_dir)
        escrow = parties.escrow(T, [court.named_key])
        parties.write_deployment(parties.deployment("lawful.e2e", escrow))
        parties.start(
            launch.Service(
                "the lawful provider",
                [sys.executable, "-m", "lawful_provider", "--data-dir", str(parties.provider_dir),
                 "--port", str(parties.port)],
                raw_argv=True,
                env={"PYTHONPATH": os.pathsep.join([str(E2E_DIR), PYTHONPATH])},
            )
        )  # fmt: skip
        epoch = launch_lawful.current_epoch(escrow)
        dkg_started = time.monotonic()
        r = run_overt(
            tmp / "home", "custodian", "dkg", "--epoch", str(epoch), "--peers",
            ",".join(parties.custodians), "--provider", parties.provider,
        )  # fmt: skip
        dkg_seconds = time.monotonic() - dkg_started
        key = asyncio.run(epoch_key(parties.provider, epoch))
        world = World(
            tmp, parties.provider, parties.custodians, parties.custodian_dirs, court, court_dir,
            escrow, epoch, EscrowPolicy(epoch, key), dkg_seconds, r.stdout + r.stderr,
        )  # fmt: skip
        asyncio.run(_accounts(world, ["alice", "bob", "carol", "dave", "erin"]))
        yield world


async def epoch_key(provider: str, epoch: int) -> Point:
    async with ProviderClient(provider) as p:
        return Point.from_bytes((await p.epoch(epoch)).public_key)


async def _accounts(world: World, names: list[str]) -> None:
    for name in names:
        transport = HttpTransport(world.provider)
        try:
            async with await Client.open(
                world.home / "profiles" / name, transport, policy=world.policy
            ) as client:
                await client.create_account(name)
        finally:
            await transport.aclose()


async def send(
    world: World, sender: str, to: str, text: str, policy: EscrowPolicy | None = None
) -> None:
    transport = HttpTransport(world.provider)
    try:
        async with await Client.open(
            world.home / "profiles" / sender, transport, policy=policy or world.policy
        ) as client:
            await client.send(to, text)
    finally:
        await transport.aclose()


def test_the_dkg_among_five_custodian_processes_logs_the_epoch_key(world: World) -> None:
    assert f"epoch {world.epoch}: key" in world.dkg_output
    assert "custodians qualified: [1, 2, 3, 4, 5]" in world.dkg_output
    assert (
        f"epoch {world.epoch}: held"
        in world.overt("custodian", "status", "--url", world.custodians[0]).stdout
    )

    async def statuses() -> list[JsonValue]:
        out = []
        for url in world.custodians:
            async with CustodianClient(url) as c:
                out.append(await c.status())
        return out

    _, retain_until = epoch_span(world.epoch, world.escrow)
    held = [{"epoch": world.epoch, "retain_until": retain_until, "status": "held"}]
    for status in asyncio.run(statuses()):
        assert isinstance(status, dict) and status["epochs"] == held


# ----------------------------------------------------------------------------- helpers


def midnight(t: int) -> int:
    return t - t % DAY


def approved_yesterday(
    world: World,
    targets: list[str],
    *,
    cap: int = 100,
    days: int = 3,
    court: court_tool.Court | None = None,
) -> bytes:
    """A warrant the court approved 24 hours ago, on ``targets``, whose window starts at
    today's midnight (UTC) — so today's messages are inside it."""
    warrant = launch_lawful.warrant_from_today(
        court or world.court, [t.encode() for t in targets], days=days, seal_days=7, cap=cap,
        reference="AUTH-E2E", legal_basis="Investigatory Powers Act s.15",
        judge_reference="J. Doe",
    )  # fmt: skip
    return court_tool.sign_warrant_file(court or world.court, warrant)


def write(world: World, name: str, data: bytes) -> Path:
    path = world.tmp / name
    path.write_bytes(data)
    return path


def case(world: World, name: str, document: bytes) -> Path:
    """``overt lea serve`` in a fresh case directory."""
    d = world.tmp / "cases" / name
    out = world.overt(
        "lea", "serve", "--data-dir", str(d), "--server", world.provider, "--warrant",
        str(write(world, f"{name}.json", document)),
    ).stdout  # fmt: skip
    assert "served: commitment logged at index" in out
    return d


def fetched(world: World, case_dir: Path) -> list[Envelope]:
    world.overt("lea", "fetch", "--data-dir", str(case_dir))
    return [Envelope.decode(i.envelope) for i in lea.load_intercepts(case_dir)]


async def ask(
    world: World,
    document: bytes,
    proof: bytes,
    envelopes: list[Envelope],
    urls: list[str] | None = None,
) -> lea.Asked:
    request = AccessRequest(
        court_tool.warrant_id_of(document), tuple(lea.access_item(e) for e in envelopes)
    )
    return await lea.ask_custodians(urls or world.custodians, document, proof, request)


async def proof_of(world: World, case_dir: Path) -> bytes:
    async with ProviderClient(world.provider) as p:
        return (await p.wait_for_proof(lea.load_case(case_dir).index, 30)).to_bytes()


def refused_with(asked: lea.Asked, code: str) -> None:
    """Nothing released, every custodian refused with ``code`` and said why."""
    assert not asked.answers, "a custodian released shares"
    assert len(asked.refused) == N, asked.failed
    for refusal in asked.refused.values():
        assert refusal.refusal == code, str(refusal)
        assert str(refusal).strip()


# ----------------------------------------------------------------------------- the flow


def test_a_warrant_goes_from_court_to_evidence_of_exactly_the_targeted_messages(
    world: World,
) -> None:
    document = approved_yesterday(world, ["alice"])
    d = case(world, "main", document)
    asyncio.run(send(world, "alice", "bob", "meet at the harbour at nine"))
    asyncio.run(send(world, "bob", "alice", "bring the documents"))
    asyncio.run(send(world, "carol", "bob", "a message no warrant names"))
    envelopes = fetched(world, d)
    assert sorted((e.sender.account, e.recipient.account) for e in envelopes) == [
        (b"alice", b"bob"),
        (b"bob", b"alice"),
    ]  # carol's message was never copied

    evidence = world.tmp / "main-evidence.bin"
    out = world.overt(
        "lea", "decrypt", "--data-dir", str(d), "--custodians", world.peers, "-o", str(evidence)
    )
    assert "opened 2 message(s) in 1 batch(es)" in out.stdout
    assert "combined the shares of custodians [1, 2, 3]" in out.stderr
    assert "franking" in out.stderr

    shown = world.overt("lea", "verify", str(evidence), "--server", world.provider).stdout
    assert "OK: the evidence verifies" in shown and "2 message(s)" in shown
    assert "alice → bob: meet at the harbour at nine" in shown
    assert "bob → alice: bring the documents" in shown
    assert "no warrant names" not in shown

    audit = world.overt("audit-access", "--server", world.provider, ok=False).stdout
    wid = b64e(court_tool.warrant_id_of(document))
    line = next(x for x in audit.splitlines() if wid in x)
    # every custodian logged one receipt for the 2 messages: 5 receipts, 10 share releases,
    # at most 2 messages decrypted (the t-th largest per-custodian count)
    assert "5 receipt(s), 10 share release(s), at most 2 message(s) decrypted" in line, audit


async def served(world: World, name: str, document: bytes) -> Path:
    """Serve and keep a case with the library (as ``overt lea serve`` does), faster."""
    d = world.tmp / "cases" / name
    await lea.serve(d, world.provider, document)
    return d


async def envelopes_of(case_dir: Path) -> list[Envelope]:
    await lea.fetch(case_dir)
    return [Envelope.decode(i.envelope) for i in lea.load_intercepts(case_dir)]


def warrant_outside_today(world: World, targets: list[str]) -> bytes:
    """Approved two days ago, in force until tomorrow, but whose task window ends at today's
    midnight: the provider copies today's messages (its window has a day of slack), the
    custodians judge their day outside it."""
    now = int(time.time())
    approved = now - 2 * DAY
    court = world.court
    warrant = Warrant(
        warrant_id=new_warrant_id(SystemRng()),
        authorisation=Authorisation(
            "AUTH-OUT", "s.15", Timespan(approved, now + DAY),
            Approval(court.name, court.key.public_key, "J. Doe", approved),
        ),
        tasks=(Task("TASK-1", tuple(t.encode() for t in targets),
                    Timespan(approved, midnight(now)), Delivery.CONTENT),),
        sealed_until=now + 7 * DAY,
        max_messages=10,
        targets_salt=new_targets_salt(SystemRng()),
    )  # fmt: skip
    return court_tool.sign_warrant_file(court, warrant)


def without_cosignatures(proof: bytes) -> bytes:
    bundle = ProofBundle.from_bytes(proof)
    note = bundle.checkpoint
    return ProofBundle(bundle.index, bundle.proof, Note(note.text, note.signatures[:1])).to_bytes()


def test_custodians_refuse_unlawful_or_unlogged_requests_and_release_nothing(
    world: World,
) -> None:
    async def body() -> None:
        document = approved_yesterday(world, ["alice"])
        d = await served(world, "refusals", document)
        await send(world, "alice", "bob", "for the refusal tests")
        (env,) = await envelopes_of(d)
        proof = await proof_of(world, d)

        forged = document.replace(b'"judge_reference":"J. Doe"', b'"judge_reference":"J. Roe"')
        refused_with(await ask(world, forged, proof, [env]), "forged_signature")

        rogue = court_tool.Court(COURT_NAME, Ed25519PrivateKey.generate(SystemRng()))
        unknown = approved_yesterday(world, ["alice"], court=rogue)
        refused_with(await ask(world, unknown, proof, [env]), "unknown_court")

        never_served = approved_yesterday(world, ["alice"])
        refused_with(await ask(world, never_served, proof, [env]), "not_in_log")

        refused_with(await ask(world, document, without_cosignatures(proof), [env]), "not_cosigned")

        on_carol = await served(world, "on-carol", approved_yesterday(world, ["carol"]))
        await send(world, "carol", "dave", "carol is no target of alice's warrant")
        (carols,) = await envelopes_of(on_carol)
        refused_with(await ask(world, document, proof, [carols]), "not_a_target")

        outside = warrant_outside_today(world, ["alice"])
        d_out = await served(world, "outside", outside)
        await send(world, "alice", "bob", "a day the window does not cover")
        (late,) = await envelopes_of(d_out)
        refused_with(
            await ask(world, outside, await proof_of(world, d_out), [late]), "outside_window"
        )
        return None

    asyncio.run(body())
    out = world.overt(
        "lea", "decrypt", "--data-dir", str(world.tmp / "cases" / "outside"), "--custodians",
        world.peers, "-o", str(world.tmp / "none.bin"), ok=False,
    )  # fmt: skip
    assert out.returncode == 1 and "no fetched envelope is covered by the warrant" in out.stderr
    assert not (world.tmp / "none.bin").exists()


def test_expired_and_revoked_warrants_are_refused(world: World) -> None:
    short = world.tmp / "short.json"
    world.overt(
        "court", "sign", "--data-dir", str(world.court_dir), "--target", "alice", "--from", "now",
        "--to", "+3s", "--seal-days", "7", "--cap", "5", "--reference", "AUTH-SHORT",
        "--legal-basis", "s.15", "-o", str(short),
    )  # fmt: skip
    revocable = approved_yesterday(world, ["alice"])
    revocable_file = write(world, "revocable.json", revocable)

    async def prepare() -> tuple[Path, Path, list[Envelope]]:
        d_short = await served(world, "short", short.read_bytes())
        d_rev = await served(world, "revocable", revocable)
        await send(world, "alice", "bob", "before the revocation")
        return d_short, d_rev, await envelopes_of(d_rev)

    d_short, d_rev, envs = asyncio.run(prepare())
    out = world.overt(
        "court", "revoke", "--data-dir", str(world.court_dir), "--warrant", str(revocable_file),
        "--reason", "quashed on appeal", "-o", str(world.tmp / "revocation.json"),
        "--server", world.provider, "--custodians", world.custodians[0],
    ).stdout  # fmt: skip
    assert "interception stopped" in out

    async def check() -> None:
        asked = await ask(world, revocable, await proof_of(world, d_rev), envs)
        refused_with(asked, "revoked")
        assert "quashed on appeal" in str(next(iter(asked.refused.values())))
        await send(world, "alice", "bob", "after the revocation")
        assert len(await envelopes_of(d_rev)) == len(envs)  # nothing copied any more
        proof = await proof_of(world, d_short)
        end = court_tool.read_own_warrant(world.court, short.read_bytes()).window.end
        await asyncio.sleep(max(0.0, end - time.time() + 0.5))
        refused_with(await ask(world, short.read_bytes(), proof, envs), "expired")

    asyncio.run(check())


def test_the_cap_and_fewer_than_t_willing_custodians_stop_the_agency(world: World) -> None:
    capped = approved_yesterday(world, ["alice"], cap=1)
    vetoed = approved_yesterday(world, ["alice"])

    async def prepare() -> tuple[Path, Path]:
        d_cap = await served(world, "capped", capped)
        d_veto = await served(world, "vetoed", vetoed)
        await send(world, "alice", "bob", "one")
        await send(world, "alice", "bob", "two")
        await lea.fetch(d_cap)
        await lea.fetch(d_veto)
        for j in (4, 5):
            async with CustodianClient(world.custodians[j - 1]) as c:
                await c.veto(
                    court_tool.warrant_id_of(vetoed), read_admin_token(world.custodian_dirs[j - 1])
                )
        return d_cap, d_veto

    d_cap, d_veto = asyncio.run(prepare())
    out = world.overt(
        "lea", "decrypt", "--data-dir", str(d_cap), "--custodians", world.peers,
        "-o", str(world.tmp / "capped.bin"), ok=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "0 custodian(s) gave valid shares, 3 are needed" in out.stderr
    assert out.stderr.count("refused (cap_exceeded)") == N

    world.overt(
        "custodian", "veto", "--url", world.custodians[2], "--data-dir",
        str(world.custodian_dirs[2]), "--warrant", str(write(world, "vetoed.json", vetoed)),
    )  # fmt: skip
    out = world.overt(
        "lea", "decrypt", "--data-dir", str(d_veto), "--custodians", world.peers,
        "-o", str(world.tmp / "vetoed.bin"), ok=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "2 custodian(s) gave valid shares, 3 are needed" in out.stderr
    assert out.stderr.count("refused (vetoed)") == 3
    assert not (world.tmp / "capped.bin").exists() and not (world.tmp / "vetoed.bin").exists()


def test_a_destroyed_epoch_can_no_longer_be_opened(world: World) -> None:
    later = world.epoch + 1

    async def prepare() -> Path:
        result = await run_dkg(later, world.custodians, world.provider)
        policy = EscrowPolicy(later, result.transcript.public_key())
        d = await served(world, "destroyed", approved_yesterday(world, ["dave"]))
        await send(world, "dave", "erin", "sent under next epoch's key", policy)
        (env,) = await envelopes_of(d)
        assert env.access is not None and env.access.epoch == later
        return d

    d = asyncio.run(prepare())
    said = world.overt(
        "custodian", "destroy", "--url", world.custodians[0], "--data-dir",
        str(world.custodian_dirs[0]), "--epoch", str(later),
    ).stdout  # fmt: skip
    assert "share is destroyed" in said

    async def destroy_the_others() -> None:
        for url, data_dir in zip(world.custodians[1:], world.custodian_dirs[1:], strict=True):
            async with CustodianClient(url) as c:
                await c.destroy(later, read_admin_token(data_dir))

    asyncio.run(destroy_the_others())
    for data_dir in world.custodian_dirs:
        state = json.loads((data_dir / "custodian-state.json").read_text())
        assert "sealed_share" not in state["epochs"][str(later)]
    out = world.overt(
        "lea", "decrypt", "--data-dir", str(d), "--custodians", world.peers,
        "-o", str(world.tmp / "destroyed.bin"), ok=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.count("refused (epoch_unavailable)") == N
    assert "0 custodian(s) gave valid shares, 3 are needed" in out.stderr


class Cheat(httpx.AsyncBaseTransport):
    """The network to the custodians, except that custodian ``index``'s answer comes back
    with a wrong share (as a broken or malicious custodian would send it)."""

    def __init__(self, url: str) -> None:
        self._url = httpx.URL(url)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.port != self._url.port or request.url.path != "/decrypt":
            return response
        doc = json.loads(await response.aread())
        answer = ShareResponse.decode(b64d(doc["response"], "response"))
        wrong = (answer.shares[0] + answer.shares[0], *answer.shares[1:])
        doc["response"] = b64e(
            ShareResponse(answer.epoch, answer.index, wrong, answer.proof).encode()
        )
        return httpx.Response(response.status_code, json=doc)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_a_custodian_returning_a_wrong_share_is_caught_and_the_honest_ones_suffice(
    world: World,
) -> None:
    async def body() -> None:
        document = approved_yesterday(world, ["erin"])
        d = await served(world, "cheat", document)
        await send(world, "erin", "bob", "first")
        await send(world, "bob", "erin", "second")
        await lea.fetch(d)
        cheat = Cheat(world.custodians[1])
        try:
            report = await lea.decrypt(
                d, world.custodians, world.tmp / "cheat.bin", custodian_transport=cheat
            )
        finally:
            await cheat.aclose()
        assert report.dropped == {2: "its share proof did not verify"}, (
            report.refused,
            report.skipped,
        )
        assert report.opened == 2
        verified = await lea.verify(world.tmp / "cheat.bin", world.provider)
        assert len(verified.messages) == 2

    asyncio.run(body())


def test_the_audit_flags_a_receipt_without_a_warrant(world: World) -> None:
    keys, created = load_or_create_keys(world.custodian_dirs[0])
    assert not created
    receipt = AccessReceipt(b"\x42" * 32, keys.sign.public_key.raw, 7, bytes(32))

    async def post() -> int:
        async with ProviderClient(world.provider) as p:
            return await p.post_receipt(receipt, sign_receipt(receipt, keys.sign))

    index = asyncio.run(post())
    time.sleep(0.5)  # let the next checkpoint be cosigned and published
    out = world.overt("audit-access", "--server", world.provider, ok=False)
    assert out.returncode == 1, out.stdout
    assert f"FLAG receipt_without_warrant at entry {index}" in out.stdout


# ----------------------------------------------------------------------------- the notice


async def _accounts_from_the_log(world: World, names: list[str]) -> None:
    """Accounts whose clients are given no policy: they take the epoch key from the log."""
    for name in names:
        transport = HttpTransport(world.provider)
        try:
            async with await Client.open(world.home / "profiles" / name, transport) as client:
                await client.create_account(name)
        finally:
            await transport.aclose()


def notices(world: World, name: str) -> str:
    return world.overt(
        "--profile", name, "--server", world.provider, "notices", "--check"
    ).stdout  # fmt: skip


def test_after_unsealing_the_targets_client_shows_the_notice(world: World) -> None:
    document = approved_yesterday(world, ["frank"])
    warrant = court_tool.read_own_warrant(world.court, document)

    async def prepare() -> Path:
        await _accounts_from_the_log(world, ["frank", "grace"])
        d = await served(world, "notice", document)
        # the CLI, with no policy given, sends under the epoch key it learns from the log
        world.overt("--profile", "frank", "--server", world.provider, "send", "grace", "hello")
        world.overt("--profile", "grace", "--server", world.provider, "send", "frank", "hi")
        envelopes = await envelopes_of(d)
        assert [e.access.epoch for e in envelopes if e.access] == [world.epoch] * 2
        report = await lea.decrypt(d, world.custodians, world.tmp / "notice.bin")
        assert report.opened == 2
        return d

    asyncio.run(prepare())
    status = world.overt("--profile", "frank", "--server", world.provider, "status").stdout
    assert "access:  exceptional access: 3 of 5 custodians, notice within 30 days" in status
    assert f"epoch:   escrow epoch {world.epoch} (key from log entry" in status
    assert "notices: none" in status
    assert "No notices" in notices(world, "frank")  # sealed: nothing to show yet

    # The notification date arrives (the provider's unsealing clock is set to it).
    (world.tmp / "provider" / "unseal-at").write_text(str(warrant.sealed_until))
    deadline = time.monotonic() + 60
    shown = notices(world, "frank")
    while "NOTICE" not in shown and time.monotonic() < deadline:
        time.sleep(0.5)
        shown = notices(world, "frank")
    assert "NOTICE: your account was named in a court warrant" in shown, shown
    words = " ".join(shown.split())
    assert "A warrant of District Court named your account" in words
    assert "at most 2 of your messages to have been decrypted" in words, shown
    assert warrant.warrant_id.hex() in shown
    again = notices(world, "frank")  # listed after, no longer prominent
    assert "NOTICE:" not in again and warrant.warrant_id.hex() in again
    assert "No notices" in notices(world, "grace")  # not a target


# ----------------------------------------------------------------------------- group messages


async def group_send(world: World, sender: str, name: str, members: list[str], text: str) -> str:
    """``sender`` makes the group ``name`` (if it has none of that name) and sends ``text``
    to it; the group's reference."""
    transport = HttpTransport(world.provider)
    try:
        async with await Client.open(
            world.home / "profiles" / sender, transport, policy=world.policy
        ) as client:
            known = [g for g in await client.groups() if g.name == name and g.active]
            info = known[0] if known else await client.create_group(name, members)
            await client.send_group(info.ref, text)
            return info.ref
    finally:
        await transport.aclose()


def group_intercepts(case_dir: Path) -> list[InterceptedEnvelope]:
    return [i for i in lea.load_intercepts(case_dir) if i.kind == "group"]


def test_a_targets_group_message_is_copied_once_opened_by_t_custodians_and_verified(
    world: World,
) -> None:
    document = approved_yesterday(world, ["bob"])  # bob is a member, not the sender
    d = case(world, "group", document)
    asyncio.run(group_send(world, "alice", "crew", ["bob", "carol"], "group plans at dawn"))
    asyncio.run(group_send(world, "dave", "quiet", ["erin"], "a group without a target"))
    world.overt("lea", "fetch", "--data-dir", str(d))
    every = lea.load_intercepts(d)
    (copy,) = group_intercepts(d)  # one copy for the message, not one per delivery
    message = GroupMessage.decode(copy.envelope)
    assert message.sender.account == b"alice" and copy.membership is not None
    members = lea.group_members(message, copy.membership)
    assert {m.account for m in members.members} == {b"alice", b"bob", b"carol"}
    # Nothing of dave's group (no target in it); the rest are alice's one-to-one envelopes
    # to bob in the group's conversation — the membership update and her sender key's
    # distribution, which the warrant covers too (the envelope does not say which is which).
    others = [Envelope.decode(i.envelope) for i in every if i.kind == "envelope"]
    assert len(others) == 2 and len(every) == 3
    assert all((e.sender.account, e.recipient.account) == (b"alice", b"bob") for e in others)
    assert all(e.conversation_id == message.group_id for e in others)
    assert all(i.sender.split(":")[0] != b64e(b"dave") for i in every)

    # Asked for under the key context, every custodian process refuses: key material is never
    # released, and nothing is counted.
    async def ask_for_keys() -> lea.Asked:
        items = []
        for e in others:
            assert e.access is not None
            ctx = access.key_context(e.access.epoch, e.sender, e.recipient, e.conversation_id,
                                     e.message_id, e.timestamp_ms)  # fmt: skip
            items.append(AccessItem(ctx, Point.from_bytes(e.access.r)))
        request = AccessRequest(court_tool.warrant_id_of(document), tuple(items))
        return await lea.ask_custodians(world.custodians, document, await proof_of(world, d),
                                        request)  # fmt: skip

    asked = asyncio.run(ask_for_keys())
    refused_with(asked, "key_material")
    assert all("key material is never released" in str(r) for r in asked.refused.values())

    evidence = world.tmp / "group-evidence.bin"
    out = world.overt(
        "lea", "decrypt", "--data-dir", str(d), "--custodians", world.peers, "-o", str(evidence)
    )
    # The tool does not ask for the two envelopes (either may be the distribution) and opens
    # the group message alone.
    assert "opened 1 message(s) in 1 batch(es)" in out.stdout, out.stdout
    assert out.stdout.count("possibly a sender-key distribution") == 2, out.stdout
    assert "combined the shares of custodians [1, 2, 3]" in out.stderr
    # the signature key is in the distribution, never decrypted: the signature is not checked
    unsigned = (
        f"group message {message.message_id.hex()} from {message.sender}: sender-key "
        "signature not checked: the sender's distribution is key material and is never decrypted"
    )
    assert unsigned in out.stderr, out.stderr

    verified_cli = world.overt("lea", "verify", str(evidence), "--server", world.provider)
    assert unsigned in verified_cli.stderr
    shown = verified_cli.stdout
    assert "OK: the evidence verifies" in shown and "1 message(s)" in shown
    assert "alice → group: group plans at dawn" in shown
    assert "a group without a target" not in shown
    verified = asyncio.run(lea.verify(evidence, world.provider))
    (group_message,) = verified.messages
    assert group_message.group_id == message.group_id and group_message.recipient is None

    audit = world.overt("audit-access", "--server", world.provider, ok=False).stdout
    wid = b64e(court_tool.warrant_id_of(document))
    line = next(x for x in audit.splitlines() if wid in x)
    # the group message counts once against the cap; the refused distribution not at all
    assert "at most 1 message(s) decrypted" in line, audit


def test_a_group_member_list_that_does_not_hash_to_the_context_is_refused(world: World) -> None:
    async def body() -> None:
        document = approved_yesterday(world, ["carol"])
        d = await served(world, "group-members", document)
        await group_send(world, "alice", "crew", ["bob", "carol"], "for the member-list check")
        await lea.fetch(d)
        copy = group_intercepts(d)[-1]
        assert copy.membership is not None
        message = GroupMessage.decode(copy.envelope)
        members = lea.group_members(message, copy.membership)
        proof = await proof_of(world, d)
        warrant_id = court_tool.warrant_id_of(document)

        async def ask_with(listed: GroupMembers) -> lea.Asked:
            request = AccessRequest(warrant_id, (lea.group_access_item(message, listed),))
            return await lea.ask_custodians(world.custodians, document, proof, request)

        # carol is a target: a list without her, or one of another version, is refused
        without_carol = GroupMembers(
            members.version, tuple(m for m in members.members if m.account != b"carol")
        )
        refused_with(await ask_with(without_carol), "group_members_mismatch")
        refused_with(
            await ask_with(GroupMembers(members.version + 1, members.members)),
            "group_members_mismatch",
        )
        # the true list opens it
        asked = await ask_with(members)
        assert len(asked.answers) == N, (asked.refused, asked.failed)

    asyncio.run(body())
