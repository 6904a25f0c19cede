"""The console's HTML: pure functions from views to pages, every value escaped.

No JavaScript and no external resource: the pages are served with a Content-Security-Policy
that allows a same-origin stylesheet and forms posting to the console only. Every POST form
carries the session's CSRF token. Text a user wrote (messages, comments, file names) is shown
as escaped text in ``<pre>`` blocks, never as markup, and attachments are only offered as
downloads.

This module knows HTML and the service's views; no HTTP framework, no storage.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Final

from overt.console.service import (
    ItemView,
    MessageView,
    Moderator,
    name_of,
)
from overt.safety.cybertip import IncidentType
from overt.storage.moderation import AuditEntry, ItemKind, ItemState, QueueItem
from overt.wire import Address

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

STYLESHEET: Final = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1b1b1b; line-height: 1.45; }
header { background: #22313f; color: #fff; padding: 0.6rem 1.5rem; display: flex;
         gap: 1.5rem; align-items: center; }
header a { color: #fff; }
header form { margin-left: auto; }
main { max-width: 70rem; margin: 1.5rem auto; padding: 0 1.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.3rem 0.8rem 0.3rem 0; border-bottom: 1px solid #ddd;
         vertical-align: top; }
pre { white-space: pre-wrap; word-break: break-word; background: #f5f5f5; padding: 0.5rem;
      margin: 0.3rem 0; }
code { font-family: ui-monospace, monospace; word-break: break-all; }
.sev { font-weight: 700; }
.sev9, .sev8, .sev7 { color: #a40000; }
.notice { background: #e8f4e8; border: 1px solid #7a7; padding: 0.5rem 1rem; }
.problem { background: #fbeaea; border: 1px solid #c77; padding: 0.5rem 1rem; }
.message { border: 1px solid #ccc; padding: 0.6rem 1rem; margin: 0.8rem 0; }
.actions form { border-top: 1px solid #ddd; padding: 0.6rem 0; }
textarea { width: 100%; min-height: 3rem; }
label { display: block; margin: 0.3rem 0; }
"""


class Html(str):
    """Markup that is already safe to include."""

    __slots__ = ()


def esc(value: object) -> Html:
    return value if isinstance(value, Html) else Html(escape(str(value), quote=True))


def html(template: str, /, **values: object) -> Html:
    """``template`` with every ``{name}`` replaced by the escaped value (``Html`` as is)."""
    return Html(template.format_map({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Html]) -> Html:
    return Html("".join(parts))


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(now_ms: int, ms: int) -> str:
    minutes = max(0, now_ms - ms) // 60_000
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def account(acct: bytes) -> Html:
    b64 = base64.urlsafe_b64encode(acct).rstrip(b"=").decode()
    return html('<span class="account" title="{b64}">{name}</span>', b64=b64, name=name_of(acct))


def address(a: Address) -> Html:
    return html("{acct} (device {device})", acct=account(a.account), device=a.device)


@dataclass(frozen=True, slots=True)
class Context:
    """What every signed-in page needs."""

    base: str
    moderator: Moderator
    csrf: str
    now_ms: int
    notice: str = ""
    problem: str = ""


def _form(ctx: Context, action: str, body: Html, button: str, css: str = "") -> Html:
    return html(
        '<form method="post" action="{base}{action}"{css}>'
        '<input type="hidden" name="csrf" value="{csrf}">{body}'
        '<button type="submit">{button}</button></form>',
        base=ctx.base, action=action, css=Html(f' class="{css}"' if css else ""), csrf=ctx.csrf,
        body=body, button=button,
    )  # fmt: skip


def _layout(title: str, body: Html, ctx: Context | None, base: str) -> str:
    head = Html("")
    if ctx is not None:
        logout = _form(ctx, "/logout", Html(""), "Log out")
        head = html(
            '<header><strong>Overt moderation</strong><a href="{base}/queue">Queue</a>'
            '<a href="{base}/audit">Audit trail</a>'
            '<span id="who">{name} ({role})</span>{logout}</header>',
            base=base, name=ctx.moderator.name, role=ctx.moderator.role.value, logout=logout,
        )  # fmt: skip
    flash = Html("")
    if ctx is not None and ctx.notice:
        flash = html('<p class="notice" id="notice">{t}</p>', t=ctx.notice)
    if ctx is not None and ctx.problem:
        flash = join([flash, html('<p class="problem" id="problem">{t}</p>', t=ctx.problem)])
    return html(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><title>{title}</title>'
        '<link rel="stylesheet" href="{base}/static/console.css"></head>'
        "<body>{head}<main>{flash}{body}</main></body></html>",
        title=f"{title} — Overt moderation", base=base, head=head, flash=flash, body=body,
    )  # fmt: skip


# ----------------------------------------------------------------------------- pages


def login_page(base: str, token: str, problem: str = "") -> str:
    shown = html('<p class="problem" id="problem">{t}</p>', t=problem) if problem else Html("")
    body = html(
        "<h1>Moderator sign-in</h1>{shown}"
        '<form method="post" action="{base}/login">'
        '<input type="hidden" name="token" value="{token}">'
        '<label>Name <input name="name" id="name" autocomplete="username" required></label>'
        '<label>Password <input name="password" id="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">Sign in</button></form>',
        shown=shown, base=base, token=token,
    )  # fmt: skip
    return _layout("Sign in", body, None, base)


def queue_page(ctx: Context, items: Sequence[QueueItem]) -> str:
    rows = [
        html(
            '<tr id="item-{id}"><td class="sev sev{sev}">{sev}</td><td>{age}</td>'
            "<td>{kind}</td><td>{label}</td><td>{subject}</td><td>{state}</td>"
            '<td><a href="{base}/items/{id}">open #{id}</a></td></tr>',
            id=i.id,
            sev=i.severity,
            age=age(ctx.now_ms, i.created_ms),
            kind=i.kind.value,
            label=i.label,
            subject=account(i.subject_account),
            state="waits for a lead" if i.state is ItemState.NEEDS_LEAD else "open",
            base=ctx.base,
        )
        for i in items
    ]
    table = (
        html(
            "<table><thead><tr><th>severity</th><th>age</th><th>kind</th><th>category / rule"
            "</th><th>about</th><th>state</th><th></th></tr></thead><tbody>{rows}</tbody>"
            "</table>",
            rows=join(rows),
        )
        if rows
        else Html('<p id="empty">Nothing waits in the queue.</p>')
    )
    body = html(
        "<h1>Queue</h1><p>Verified reports and metadata signals, most severe first, then "
        "oldest.</p>{table}",
        table=table,
    )
    return _layout("Queue", body, ctx, ctx.base)


def _message(ctx: Context, item_id: int, m: MessageView) -> Html:
    att = Html("")
    if m.attachment is not None:
        a = m.attachment
        if a.revealed:
            link = html(
                '<a href="{base}/items/{item}/attachments/{i}" id="download-{i}">download '
                "(decrypted and checked on the server)</a>",
                base=ctx.base, item=item_id, i=m.index,
            )  # fmt: skip
        else:
            link = Html("content not revealed by the reporter: only its hashes are known")
        att = html(
            "<p>Attachment <code>{name}</code> ({ctype}, {size} bytes), SHA-256 "
            "<code>{sha}</code>: {link}</p>",
            name=a.file_name or "(no name)", ctype=a.content_type or "unknown type",
            size=a.size, sha=a.plaintext_sha256, link=link,
        )  # fmt: skip
    return html(
        '<div class="message" id="message-{i}"><p><strong>Message {i}</strong> from {sender} '
        "to {recipient}, sent {sent}, relayed {relayed} (server id {sid})</p>"
        '<pre class="text">{text}</pre>{att}</div>',
        i=m.index, sender=address(m.sender), recipient=address(m.recipient),
        sent=when(m.sent_ms), relayed=when(m.server_time_ms), sid=m.server_id,
        text=m.text or "(no text)", att=att,
    )  # fmt: skip


def _audit_rows(ctx: Context, entries: Sequence[AuditEntry]) -> Html:
    rows = [
        html(
            '<tr class="audit-entry"><td>{at}</td><td>{actor}</td><td class="action">{action}'
            "</td><td>{item}</td><td>{subject}</td><td>{detail}</td></tr>",
            at=when(e.at_ms),
            actor=e.actor,
            action=e.action,
            item=html('<a href="{b}/items/{i}">#{i}</a>', b=ctx.base, i=e.item_id)
            if e.item_id is not None
            else "",
            subject=account(e.subject_account) if e.subject_account else "",
            detail=e.detail,
        )
        for e in entries
    ]
    return html(
        '<table id="audit"><thead><tr><th>when</th><th>who</th><th>did</th><th>item</th>'
        "<th>account</th><th>notes</th></tr></thead><tbody>{rows}</tbody></table>",
        rows=join(rows),
    )


def _actions(ctx: Context, view: ItemView, escalation_enabled: bool) -> Html:
    item = view.item
    lead = ctx.moderator.is_lead
    if item.state is ItemState.CLOSED:
        return html("<p>Closed: {r}.</p>", r=item.resolution or "")
    if item.state is ItemState.NEEDS_LEAD and not lead:
        return Html("<p>A moderator proposed escalating this report: a lead decides.</p>")
    notes = Html('<label>Notes <textarea name="notes"></textarea></label>')
    base = f"/items/{item.id}"
    forms = [
        _form(ctx, f"{base}/dismiss", notes, "Dismiss"),
        _form(ctx, f"{base}/warn", notes, "Warn the account"),
        _form(ctx, f"{base}/suspend", notes, "Suspend the account"),
    ]
    has_evidence = (item.kind is ItemKind.REPORT or view.match is not None) and (
        view.problem is None
    )
    if has_evidence and item.state is ItemState.OPEN:
        forms.append(_form(ctx, f"{base}/propose", notes, "Propose escalation to a lead"))
    if lead and item.state is ItemState.NEEDS_LEAD:
        forms.append(_form(ctx, f"{base}/decline", notes, "Send back to the queue"))
    if lead and has_evidence and escalation_enabled:
        options = join(html('<option value="{v}">{v}</option>', v=t.value) for t in IncidentType)
        fields = html(
            '<label>Incident type <select name="incident_type">{options}</select></label>'
            '<label>Notes for NCMEC (what you saw, why it is reported) '
            '<textarea name="notes" required></textarea></label>'
            '<label>High priority because (optional) <input name="high_priority"></label>',
            options=options,
        )  # fmt: skip
        forms.append(_form(ctx, f"{base}/escalate", fields, "Escalate to the CyberTipline"))
    return html('<section class="actions"><h2>Actions</h2>{f}</section>', f=join(forms))


def item_page(ctx: Context, view: ItemView, escalation_enabled: bool) -> str:
    item = view.item
    parts: list[Html] = [
        html(
            "<h1>Item #{id}: {label}</h1><p>{kind} about {subject}, severity {sev}, "
            "received {at}, state {state}</p>",
            id=item.id,
            label=item.label,
            kind=item.kind.value,
            subject=account(item.subject_account),
            sev=item.severity,
            at=when(item.created_ms),
            state=item.state.value,
        )
    ]
    st = view.standing
    if st is not None:
        parts.append(
            html(
                '<p id="standing">This account has {w} warning(s){s}.</p>',
                w=st.warnings,
                s=" and is suspended" if st.suspended else "",
            )
        )
        if st.suspended and ctx.moderator.is_lead:
            parts.append(_form(ctx, f"/items/{item.id}/lift", Html(""), "Lift the suspension"))
    if view.match is not None:
        m = view.match
        parts.append(
            html(
                "<h2>Known-content match</h2><p>This account sent at least the threshold of "
                "images matching the signed, logged hash list; this one passed the re-check. "
                "All the provider holds of it is what its sender's client made: the visual "
                'derivative below and its PDQ hash.</p><img id="derivative" alt="visual '
                'derivative" width="256" height="256" src="{b}/items/{i}/derivative.png">'
                "<table><tr><th>PDQ</th><td><code>{pdq}</code></td></tr><tr><th>distance to "
                "the listed hash</th><td>{d}</td></tr><tr><th>quality</th><td>{q}</td></tr>"
                "<tr><th>original size</th><td>{w}×{h}</td></tr><tr><th>list version</th>"
                "<td>{v}</td></tr><tr><th>device</th><td>{dev}</td></tr></table>",
                b=ctx.base,
                i=item.id,
                pdq=m.payload.pdq.hex(),
                d=m.distance,
                q=m.payload.quality,
                w=m.payload.width,
                h=m.payload.height,
                v=m.list_version,
                dev=m.device,
            )
        )
    elif view.problem is not None and item.kind is ItemKind.SIGNAL:
        parts.append(html('<p class="problem" id="evidence-problem">{p}</p>', p=view.problem))
    elif item.kind is ItemKind.SIGNAL:
        facts = join(
            html("<tr><th>{k}</th><td>{v}</td></tr>", k=k, v=v) for k, v in view.signal.items()
        )
        parts.append(
            html(
                "<h2>Metadata signal</h2><p>No message content: only what the relay sees "
                "(counts, sizes, times).</p><table>{facts}</table>",
                facts=facts,
            )
        )
    elif view.problem is not None:
        parts.append(html('<p class="problem" id="evidence-problem">{p}</p>', p=view.problem))
    else:
        reporter = address(view.reporter) if view.reporter is not None else Html("")
        comment = (
            html('<h2>The reporter\'s comment</h2><pre id="comment">{c}</pre>', c=view.comment)
            if view.comment
            else Html("<p>The reporter wrote no comment.</p>")
        )
        parts.append(
            html(
                "<h2>What the reporter revealed</h2><p>Reported by {reporter}. Evidence "
                "re-verified just now (franking commitments, delivery tags, attachment hashes); "
                "SHA-256 <code>{sha}</code>. Nothing else of the conversation is known.</p>"
                "{comment}{messages}",
                reporter=reporter,
                sha=view.report_sha256 or "",
                comment=comment,
                messages=join(_message(ctx, item.id, m) for m in view.messages),
            )
        )
    parts.append(_actions(ctx, view, escalation_enabled))
    parts.append(html("<h2>History of this item</h2>{t}", t=_audit_rows(ctx, view.audit)))
    return _layout(f"Item {item.id}", join(parts), ctx, ctx.base)


def audit_page(ctx: Context, entries: Sequence[AuditEntry], older: int | None) -> str:
    more = (
        html(
            '<p><a href="{b}/audit?before={i}" id="older">older entries</a></p>',
            b=ctx.base,
            i=older,
        )
        if older is not None
        else Html("")
    )
    body = html(
        "<h1>Audit trail</h1><p>Who did what, when: every sign-in, view, download and action, "
        "newest first. Entries are never changed or deleted.</p>{t}{more}",
        t=_audit_rows(ctx, entries), more=more,
    )  # fmt: skip
    return _layout("Audit trail", body, ctx, ctx.base)


def error_page(ctx: Context | None, base: str, status: int, message: str) -> str:
    back = html('<p><a href="{b}/queue">Back to the queue</a></p>', b=base)
    body = html('<h1>{s}</h1><p class="problem" id="problem">{m}</p>{back}', s=status,
                m=message, back=back)  # fmt: skip
    return _layout(str(status), body, ctx, base)
