"""The public log explorer (``GET /log``): one server-rendered HTML page, no JavaScript.

It shows what anyone may know about the deployment: its name and policy (the lines clients
show), the log's origin and verifier key, the latest *published* checkpoint (size, root hash,
the time of its latest cosignature and which witnesses cosigned), how many entries of each
type the log holds and its last entries — for a key-directory update only the first bytes of
its label, a pseudonym. No account id, device list, opening or request detail is ever shown.

:func:`render` is a pure function of an :class:`ExplorerPage`; every value is HTML-escaped.
The page is served with a Content-Security-Policy that allows no script at all.

This module knows HTML; no HTTP framework, no storage, no keys.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Final

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""No scripts, no external resources, no framing."""

RAW_CHECKPOINT_PATH: Final = "/v1/log/checkpoint"


@dataclass(frozen=True, slots=True)
class CheckpointView:
    size: int
    root_hash: bytes
    cosigned_at: int | None
    """The latest cosignature time (Unix seconds), if any witness cosigned."""
    cosigners: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntryRow:
    index: int
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class ExplorerPage:
    deployment: str
    policy: str
    safety: str
    manifest_version: int
    manifest_index: int
    origin: str
    vkey: str
    witnesses: tuple[str, ...]
    quorum: int
    checkpoint: CheckpointView | None
    counts: tuple[tuple[str, int], ...]
    recent: tuple[EntryRow, ...]


_STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem;
       color: #1b1b1b; line-height: 1.45; }
code { font-family: ui-monospace, monospace; word-break: break-all; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.2rem 0.8rem 0.2rem 0; border-bottom: 1px solid #ddd; }
td.n { text-align: right; }
dt { font-weight: 600; }
dd { margin: 0 0 0.5rem 0; }
.policy { font-size: 1.1rem; }
"""


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _witness_line(page: ExplorerPage) -> str:
    if not page.witnesses:
        return "none: checkpoints are signed by the log alone"
    names = ", ".join(escape(w) for w in page.witnesses)
    return f"{page.quorum} of {len(page.witnesses)} must cosign ({names})"


def _checkpoint(page: ExplorerPage) -> str:
    cp = page.checkpoint
    if cp is None:
        return (
            '<section id="checkpoint"><h2>Latest published checkpoint</h2>'
            "<p>No checkpoint has been published yet.</p></section>"
        )
    cosigned = "—" if cp.cosigned_at is None else escape(_time(cp.cosigned_at))
    if cp.cosigners:
        cosigners = "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in cp.cosigners) + "</ul>"
    else:
        cosigners = "no witness"
    root = base64.b64encode(cp.root_hash).decode("ascii")
    return (
        '<section id="checkpoint"><h2>Latest published checkpoint</h2><dl>'
        f'<dt>Size</dt><dd id="checkpoint-size">{cp.size}</dd>'
        f'<dt>Root hash</dt><dd><code id="checkpoint-root">{root}</code></dd>'
        f'<dt>Last cosigned</dt><dd id="checkpoint-time">{cosigned}</dd>'
        f'<dt>Cosigned by</dt><dd id="checkpoint-cosigners">{cosigners}</dd>'
        f'</dl><p><a id="raw-checkpoint" href="{RAW_CHECKPOINT_PATH}">'
        "The raw checkpoint (a signed note, with every cosignature)</a></p></section>"
    )


def render(page: ExplorerPage) -> str:
    """The whole page."""
    title = f"Transparency log — {page.deployment}"
    counts = "".join(
        f'<tr><td>{escape(kind)}</td><td class="n" data-type="{escape(kind)}">{n}</td></tr>'
        for kind, n in page.counts
    )
    rows = "".join(
        f'<tr><td class="n">{row.index}</td><td>{escape(row.kind)}</td>'
        f"<td><code>{escape(row.detail)}</code></td></tr>"
        for row in page.recent
    )
    recent = (
        '<table id="recent"><thead><tr><th>Index</th><th>Type</th><th>Detail</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p>None published yet.</p>"
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="policy" id="policy">{escape(page.policy)}</p>'
        f'<p id="safety">{escape(page.safety)}</p>'
        '<section id="log"><h2>The log</h2><dl>'
        f'<dt>Origin</dt><dd><code id="origin">{escape(page.origin)}</code></dd>'
        f'<dt>Verifier key</dt><dd><code id="vkey">{escape(page.vkey)}</code></dd>'
        f"<dt>Manifest</dt><dd>version {page.manifest_version}, entry "
        f"{page.manifest_index}</dd>"
        f'<dt>Witnesses</dt><dd id="witnesses">{_witness_line(page)}</dd>'
        "</dl></section>"
        f"{_checkpoint(page)}"
        '<section><h2>Entries by type</h2><table id="counts"><thead><tr><th>Type</th>'
        f"<th>Entries</th></tr></thead><tbody>{counts}</tbody></table></section>"
        f"<section><h2>Latest entries</h2>{recent}</section>"
        "<p>Key-directory entries name no account: a label is a VRF output, shown here by its "
        "first bytes. Check everything on this page against the signed checkpoint.</p>"
        "</main></body></html>\n"
    )
