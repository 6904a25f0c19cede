"""The lawful-access parties' commands: ``overt custodian``, ``overt court``, ``overt lea`` and
``overt audit-access`` (docs/lawful-access.md walks through them).

* ``overt custodian --data-dir D --index J --name N --provider URL [--host --port]`` runs
  custodian ``J``; ``overt custodian dkg --epoch E --peers URL,...`` drives an epoch's DKG;
  ``destroy``, ``veto`` and ``status`` are the operator's actions on a running custodian.
* ``overt court keygen|sign|revoke`` — a court's key, warrants and revocations (files).
* ``overt lea serve|fetch|decrypt|verify`` — an agency's case, one data directory per warrant.
* ``overt audit-access --server URL`` — anyone's recount of warrants and receipts from the log.

Every command here is a plain function run with ``asyncio.run`` (``sync`` in the parser), so
the profile-alarm wrapper of ``overt audit`` leaves them alone: none uses a user profile.
Progress goes to stderr; errors are raised as :class:`~overt.errors.OvertError` and printed by
:func:`overt.cli.main.main`. This module only parses arguments, calls :mod:`overt.services` and
prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from overt.access.warrant import Delivery
from overt.client.body import Body
from overt.crypto import SystemRng
from overt.errors import DecodeError, LocalError
from overt.services import court as court_tool
from overt.services import lea
from overt.services.custodian import read_admin_token, run_custodian
from overt.services.custodian_client import CustodianClient, ProviderClient, run_dkg
from overt.services.custodian_wire import b64d, b64e
from overt.wire.jcs import JsonValue

DEFAULT_CUSTODIAN_PORT: Final = 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get("OVERT_HOME") or Path.home() / ".overt").expanduser()


def _server(args: argparse.Namespace) -> str:
    url = getattr(args, "access_server", None) or args.server or os.environ.get("OVERT_SERVER")
    if not url:
        raise LocalError("give the provider's URL: --server URL")
    return str(url)


def _urls(text: str) -> list[str]:
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise LocalError("give the URLs comma-separated: URL1,URL2,...")
    return urls


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise LocalError(f"cannot read the {what} {path}: {e.strerror}") from None


def _write(path: str, data: bytes) -> None:
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------------- custodian


def cmd_custodian(args: argparse.Namespace) -> int:
    action = getattr(args, "custodian_action", None)
    if action is None:
        if args.data_dir is None or args.index is None or args.name is None:
            raise LocalError(
                "run a custodian with --data-dir D --index J --name NAME --provider URL"
            )
        provider = args.provider or args.server or os.environ.get("OVERT_SERVER")
        if not provider:
            raise LocalError("give the provider's URL: --provider URL")
        run_custodian(
            args.host, args.port, args.data_dir, index=args.index, name=args.name,
            provider_url=provider, log_level=args.log_level,
        )  # fmt: skip
        return 0
    return int(action(args))


def cmd_custodian_dkg(args: argparse.Namespace) -> int:
    provider = args.dkg_provider or args.server or os.environ.get("OVERT_SERVER")
    if not provider:
        raise LocalError("give the provider's URL: --provider URL")
    result = asyncio.run(
        run_dkg(args.epoch, _urls(args.peers), provider, attempt=args.attempt, progress=_say)
    )
    print(f"epoch {result.epoch}: key {b64e(result.public_key)} logged at index {result.index}")
    print(f"custodians qualified: {list(result.transcript.qualified)}; took {result.seconds:.2f} s")
    return 0


def cmd_custodian_destroy(args: argparse.Namespace) -> int:
    async def run() -> None:
        async with CustodianClient(args.url) as client:
            await client.destroy(args.epoch, read_admin_token(args.admin_dir))

    asyncio.run(run())
    print(f"epoch {args.epoch}: this custodian's share is destroyed")
    return 0


def cmd_custodian_veto(args: argparse.Namespace) -> int:
    warrant_id = (
        court_tool.warrant_id_of(_read(args.warrant, "warrant"))
        if Path(args.warrant).exists()
        else b64d(args.warrant, "warrant id", 32)
    )

    async def run() -> None:
        async with CustodianClient(args.url) as client:
            await client.veto(warrant_id, read_admin_token(args.admin_dir))

    asyncio.run(run())
    print(f"warrant {b64e(warrant_id)}: this custodian will release nothing under it")
    return 0


def cmd_custodian_status(args: argparse.Namespace) -> int:
    async def run() -> JsonValue:
        async with CustodianClient(args.url) as client:
            return await client.status()

    status = asyncio.run(run())
    if not isinstance(status, dict):
        raise LocalError("the custodian's status is not a JSON object")
    ident, epochs, warrants = status.get("custodian"), status.get("epochs"), status.get("warrants")
    if isinstance(ident, dict):
        print(f"custodian {ident.get('name')} (index {ident.get('index')}), key {ident.get('key')}")
    for e in epochs if isinstance(epochs, list) else []:
        if isinstance(e, dict):
            until = e.get("retain_until")
            when = _when(until) if isinstance(until, int) else "?"
            print(f"  epoch {e.get('epoch')}: {e.get('status')} (retained until {when})")
    for w in warrants if isinstance(warrants, list) else []:
        if isinstance(w, dict):
            print(f"  warrant {w.get('warrant_id')}: {w.get('released')} message(s) released")
    return 0


# ----------------------------------------------------------------------------- court


def cmd_court_keygen(args: argparse.Namespace) -> int:
    court = court_tool.keygen(args.data_dir, args.name)
    print(f"court key created for {court.name!r} in {args.data_dir}")
    print(f"court key: {b64e(court.key.public_key.raw)}")
    print(f'list it in the deployment\'s access.court_keys: {{"key": '
          f'"{b64e(court.key.public_key.raw)}", "name": "{court.name}"}}')  # fmt: skip
    return 0


def cmd_court_sign(args: argparse.Namespace) -> int:
    court = court_tool.load(args.data_dir)
    now = int(time.time())
    warrant = court_tool.make_warrant(
        court,
        targets=[t.encode("utf-8") for t in args.target],
        start=court_tool.parse_time(args.start, now),
        end=court_tool.parse_time(args.end, now),
        seal_days=args.seal_days,
        cap=args.cap,
        reference=args.reference,
        legal_basis=args.legal_basis,
        judge_reference=args.judge,
        now=now,
        rng=SystemRng(),
        delivery=Delivery.METADATA if args.metadata_only else Delivery.CONTENT,
    )
    _write(args.output, court_tool.sign_warrant_file(court, warrant, args.max_seal_days))
    summary = court_tool.describe(warrant)
    assert isinstance(summary, dict)
    print(f"warrant {summary['warrant_id']} signed by {court.name!r} → {args.output}")
    span = warrant.tasks[0].timespan
    print(f"  targets {', '.join(args.target)}; window {_when(span.start)} – {_when(span.end)}")
    print(f"  cap {warrant.max_messages}; the targets are told by {_when(warrant.sealed_until)}")
    return 0


def cmd_court_revoke(args: argparse.Namespace) -> int:
    court = court_tool.load(args.data_dir)
    document = _read(args.warrant, "warrant")
    revocation = court_tool.revoke(court, document, reason=args.reason, now=int(time.time()))
    _write(args.output, revocation)
    warrant_id = court_tool.warrant_id_of(document)
    print(f"revocation of warrant {b64e(warrant_id)} signed → {args.output}")

    async def deliver() -> None:
        if args.deliver_to:
            async with ProviderClient(args.deliver_to) as provider:
                await provider.revoke(warrant_id, revocation)
            print(f"  delivered to the provider {args.deliver_to}: interception stopped")
        for url in _urls(args.custodians) if args.custodians else []:
            async with CustodianClient(url) as client:
                await client.add_revocation(revocation)
            print(f"  delivered to custodian {url}")

    asyncio.run(deliver())
    return 0


# ----------------------------------------------------------------------------- LEA


def _case_dir(args: argparse.Namespace) -> Path:
    return Path(args.case_dir) if args.case_dir else _home(args) / "lea"


def cmd_lea_serve(args: argparse.Namespace) -> int:
    case = asyncio.run(
        lea.serve(_case_dir(args), _server(args), _read(args.warrant, "warrant"), progress=_say)
    )
    print(f"warrant {b64e(case.warrant_id)} served: commitment logged at index {case.index}")
    print(f"case kept in {_case_dir(args)} (the access token is in case.json, mode 0600)")
    return 0


def cmd_lea_fetch(args: argparse.Namespace) -> int:
    new = asyncio.run(lea.fetch(_case_dir(args), progress=_say))
    total = len(lea.load_intercepts(_case_dir(args)))
    print(f"{new} new intercepted envelope(s); {total} in the case")
    return 0


def cmd_lea_decrypt(args: argparse.Namespace) -> int:
    report = asyncio.run(
        lea.decrypt(
            _case_dir(args),
            _urls(args.custodians),
            args.output,
            batch_size=args.batch,
            progress=_say,
        )
    )
    print(f"opened {report.opened} message(s) in {report.batches} batch(es) in "
          f"{report.seconds:.2f} s → {report.path}")  # fmt: skip
    for j, why in sorted(report.dropped.items()):
        print(f"  dropped custodian {j}: {why}")
    for url, why in sorted(report.refused.items()):
        print(f"  {url}: {why}")
    for line in report.skipped:
        print(f"  skipped {line}")
    return 0


def cmd_lea_verify(args: argparse.Namespace) -> int:
    verified = asyncio.run(lea.verify(args.evidence, _server(args), progress=_say))
    print(f"OK: the evidence verifies — warrant {b64e(verified.warrant.warrant_id)}, "
          f"{len(verified.messages)} message(s), each opened by t custodians' proven shares, "
          "receipted in the log and franking-checked")  # fmt: skip
    for m in verified.messages:
        to = "group" if m.recipient is None else m.recipient.account.decode("utf-8", "replace")
        text = _shown(m.body)
        when = _when(m.timestamp_ms // 1000)
        print(f"  [{when}] {m.sender.account.decode('utf-8', 'replace')} → {to}: {text}")
    return 0


def _shown(body: bytes) -> str:
    """A message body as people read it: the client's text (and attachment), else raw."""
    try:
        decoded = Body.decode(body)
    except DecodeError:
        return f"(not a client body: {body[:64]!r})"
    if decoded.attachment is not None:
        a = decoded.attachment
        return f"{decoded.text} [attachment {a.file_name or a.blob_id.hex()}, {a.size} bytes]"
    return decoded.text


def cmd_audit_access(args: argparse.Namespace) -> int:
    server = _server(args)
    print(f"Recounting lawful access in the log of {server}…")
    report, trust, size = asyncio.run(lea.audit_access(server, progress=_say))
    print(f"log: {size} entries under a checkpoint cosigned by the witness quorum")
    receipts = sum(t.receipts for t in report.warrants.values())
    print(f"warrants: {len(report.warrants)}; receipts: {receipts}; flags: {len(report.flags)}")
    for line in lea.describe_report(report, trust):
        print(f"  {line}")
    if report.flags:
        print("FLAGGED: see the lines above")
        return 1
    print("OK: every receipt follows its warrant's commitment")
    return 0


# ----------------------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``custodian``, ``court``, ``lea`` and ``audit-access``."""
    c = subparsers.add_parser("custodian", help="run a key custodian, or act on one")
    c.add_argument("--data-dir", help="the custodian's keys and state")
    c.add_argument("--index", type=int, help="its 1-based position in the manifest")
    c.add_argument("--name", help="its name, as the manifest gives it")
    c.add_argument("--provider", help="the provider's URL (default: --server)")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=DEFAULT_CUSTODIAN_PORT, help="0: any free port")
    c.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    c.set_defaults(sync=cmd_custodian)
    actions = c.add_subparsers(dest="custodian_action_name", metavar="ACTION")
    a = actions.add_parser("dkg", help="drive an escrow epoch's DKG among the custodians")
    a.add_argument("--epoch", type=int, required=True)
    a.add_argument("--peers", required=True, help="every custodian's URL, comma-separated")
    a.add_argument("--provider", dest="dkg_provider", help="the provider's URL (default: --server)")
    a.add_argument("--attempt", type=int, default=0, help="a new number after a failed run")
    a.set_defaults(custodian_action=cmd_custodian_dkg)
    a = actions.add_parser("destroy", help="destroy this custodian's share of an epoch now")
    a.add_argument("--url", required=True, help="the custodian's URL")
    a.add_argument("--data-dir", dest="admin_dir", required=True, help="for its admin token")
    a.add_argument("--epoch", type=int, required=True)
    a.set_defaults(custodian_action=cmd_custodian_destroy)
    a = actions.add_parser("veto", help="refuse a warrant at this custodian, whatever it says")
    a.add_argument("--url", required=True)
    a.add_argument("--data-dir", dest="admin_dir", required=True)
    a.add_argument("--warrant", required=True, help="the warrant file or its id (base64url)")
    a.set_defaults(custodian_action=cmd_custodian_veto)
    a = actions.add_parser("status", help="what a custodian holds and has released")
    a.add_argument("--url", required=True)
    a.set_defaults(custodian_action=cmd_custodian_status)

    court = subparsers.add_parser("court", help="a court's key, warrants and revocations")
    cs = court.add_subparsers(dest="court_action", required=True, metavar="ACTION")
    k = cs.add_parser("keygen", help="create the court's signing key")
    k.add_argument("--data-dir", required=True)
    k.add_argument("--name", default="District Court", help="as the manifest will list it")
    k.set_defaults(sync=cmd_court_keygen)
    s = cs.add_parser("sign", help="sign a warrant (approved now)")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--target", action="append", required=True, help="an account (repeatable)")
    s.add_argument("--from", dest="start", required=True, help="window start: tomorrow, +1d, ISO")
    s.add_argument("--to", dest="end", required=True, help="window end")
    s.add_argument("--seal-days", type=int, required=True, help="days until the targets are told")
    s.add_argument("--cap", type=int, required=True, help="most messages any custodian opens")
    s.add_argument("--reference", required=True)
    s.add_argument("--legal-basis", required=True)
    s.add_argument("--judge", default="the court", help="the judge's reference")
    s.add_argument("--metadata-only", action="store_true", help="authorise no content")
    s.add_argument("--max-seal-days", type=int, help="the manifest's bound, to check now")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(sync=cmd_court_sign)
    r = cs.add_parser("revoke", help="sign a revocation (and deliver it)")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--warrant", required=True, help="the warrant file")
    r.add_argument("--reason", default="revoked by the court")
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--server", dest="deliver_to", help="deliver it to this provider too")
    r.add_argument("--custodians", help="and to these custodians, comma-separated")
    r.set_defaults(sync=cmd_court_revoke)

    agency = subparsers.add_parser("lea", help="a law-enforcement agency's case")
    ls = agency.add_subparsers(dest="lea_action", required=True, metavar="ACTION")
    for name, helptext, run in (
        ("serve", "serve a warrant on the provider", cmd_lea_serve),
        ("fetch", "download what the provider intercepted", cmd_lea_fetch),
        ("decrypt", "ask the custodians, open, write evidence", cmd_lea_decrypt),
        ("verify", "re-check an evidence bundle", cmd_lea_verify),
    ):
        p = ls.add_parser(name, help=helptext)
        p.add_argument("--data-dir", dest="case_dir", help="the case (default $OVERT_HOME/lea)")
        p.add_argument("--server", dest="access_server", help="the provider's URL")
        p.set_defaults(sync=run)
        if name == "serve":
            p.add_argument("--warrant", required=True, help="the court's signed warrant file")
        elif name == "decrypt":
            p.add_argument("--custodians", required=True, help="every custodian's URL")
            p.add_argument("-o", "--output", required=True, help="the evidence bundle to write")
            p.add_argument("--batch", type=int, default=lea.DEFAULT_BATCH)
        elif name == "verify":
            p.add_argument("evidence")

    a = subparsers.add_parser("audit-access", help="recount warrants and receipts from the log")
    a.add_argument("--server", dest="access_server", help="the provider's URL")
    a.set_defaults(sync=cmd_audit_access)


__all__ = ["add_commands"]
