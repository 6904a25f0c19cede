"""The console as an ASGI application (Starlette), mounted by the relay at ``/console``.

Routes (relative to the mount point)::

    GET  /login, POST /login, POST /logout
    GET  /queue                          the queue: severity, then age
    GET  /items/{id}                     one item: what the reporter revealed, actions, history
    GET  /items/{id}/attachments/{n}     a revealed attachment, decrypted and checked
    POST /items/{id}/{action}            dismiss, warn, suspend, propose, decline, escalate, lift
    GET  /audit[?before=N]               the audit trail
    GET  /static/console.css

Every route but the login form and the stylesheet needs a signed-in moderator
(:mod:`overt.console.sessions`); every POST needs the form's CSRF token. Answers carry a
Content-Security-Policy without scripts, ``X-Frame-Options: DENY``, ``nosniff``,
``no-referrer`` and ``Cache-Control: no-store`` (evidence must not linger in caches). A POST
that succeeds redirects (303) to the page to look at next, with a fixed notice.

This module knows HTTP and cookies; what is done is the service's, what is shown the pages'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from overt.console import pages
from overt.console.pages import Context
from overt.console.service import AUDIT_PAGE, ConsoleError, ConsoleService, Moderator
from overt.console.sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, Sessions
from overt.errors import OvertError, RemoteError
from overt.safety.cybertip import IncidentType

Clock = Callable[[], int]

#: Largest form body accepted (notes are at most a few KiB).
MAX_FORM_BYTES: Final = 64 * 1024
#: Fields one form may carry.
MAX_FORM_FIELDS: Final = 16

_HEADERS: Final = {
    "Content-Security-Policy": pages.CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

NOTICES: Final[Mapping[str, str]] = {
    "dismiss": "Dismissed.",
    "warn": "The account was warned.",
    "suspend": "The account is suspended.",
    "propose": "Proposed for escalation: a lead decides.",
    "decline": "Sent back to the queue.",
    "escalate": "Escalated: the CyberTipline accepted the report.",
    "lift": "The suspension is lifted.",
}


class _SecurityHeaders:
    """Adds :data:`_HEADERS` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in _HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, wrapped)


class _Unauthorized(Exception):
    """No (valid) session: go to the login page."""


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form, bounded; the first value of each field."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise ConsoleError("this form must be sent as application/x-www-form-urlencoded")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_FORM_BYTES:
            raise ConsoleError(f"the form is larger than {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    try:
        parsed = parse_qs(
            b"".join(chunks).decode("utf-8"), keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS, strict_parsing=False,
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError("the form does not parse") from None
    return {k: v[0] for k, v in parsed.items()}


def create_console(
    service: ConsoleService,
    sessions: Sessions,
    *,
    clock: Clock,
    secure_cookies: bool | None = None,
) -> ASGIApp:
    """The console over ``service``. ``secure_cookies`` None: ``Secure`` iff the request came
    over HTTPS (behind a TLS-terminating proxy, pass True)."""

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def cookie_path(request: Request) -> str:
        return base(request) or "/"

    def secure(request: Request) -> bool:
        return request.url.scheme == "https" if secure_cookies is None else secure_cookies

    async def signed_in(request: Request) -> tuple[Session, Moderator]:
        session = sessions.check(request.cookies.get(SESSION_COOKIE), clock())
        moderator = None if session is None else await service.moderator(session.name)
        if session is None or moderator is None:
            raise _Unauthorized()
        return session, moderator

    def context(request: Request, session: Session, moderator: Moderator) -> Context:
        done = request.query_params.get("done", "")
        return Context(base(request), moderator, sessions.csrf_token(session), clock(),
                       notice=NOTICES.get(done, ""))  # fmt: skip

    def page(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status)

    Handler = Callable[[Request], Awaitable[Response]]

    def guarded(handler: Handler) -> Handler:
        """Redirects to the login page without a session; errors become error pages."""

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except _Unauthorized:
                if request.method == "GET":
                    return RedirectResponse(f"{base(request)}/login", status_code=303)
                return page(pages.error_page(None, base(request), 401, "Sign in again."), 401)
            except RemoteError as exc:
                ctx = None
                try:
                    session, moderator = await signed_in(request)
                    ctx = context(request, session, moderator)
                except _Unauthorized:
                    pass
                status = exc.status_hint if 400 <= exc.status_hint < 600 else 400
                return page(pages.error_page(ctx, base(request), status, str(exc)), status)
            except OvertError:
                message = "The console failed to do this; the safety team's engineers are told."
                return page(pages.error_page(None, base(request), 500, message), 500)

        return run

    # ------------------------------------------------------------------ sign-in

    async def root(request: Request) -> Response:
        return RedirectResponse(f"{base(request)}/queue", status_code=303)

    async def stylesheet(request: Request) -> Response:
        del request
        return Response(pages.STYLESHEET, media_type="text/css")

    def login_form(request: Request, problem: str = "", status: int = 200) -> Response:
        nonce = sessions.login_nonce()
        response = page(pages.login_page(base(request), sessions.login_token(nonce), problem),
                        status)  # fmt: skip
        response.set_cookie(
            LOGIN_COOKIE, nonce, path=cookie_path(request), httponly=True, samesite="strict",
            secure=secure(request),
        )  # fmt: skip
        return response

    async def login_get(request: Request) -> Response:
        return login_form(request)

    async def login_post(request: Request) -> Response:
        try:
            form = await _form(request)
        except ConsoleError as exc:
            return login_form(request, str(exc), 400)
        if not sessions.check_login_token(request.cookies.get(LOGIN_COOKIE), form.get("token")):
            return login_form(request, "The sign-in form expired; sign in again.", 400)
        moderator = await service.login(form.get("name", ""), form.get("password", ""))
        if moderator is None:
            return login_form(
                request,
                "Wrong name or password (after several failures, wait 15 minutes).",
                401,
            )
        _, cookie = sessions.issue(moderator.name, clock())
        response = RedirectResponse(f"{base(request)}/queue", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, cookie, path=cookie_path(request), httponly=True, samesite="strict",
            secure=secure(request),
        )  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE, path=cookie_path(request))
        return response

    async def logout(request: Request) -> Response:
        session, moderator = await signed_in(request)
        form = await _form(request)
        if not sessions.check_csrf(session, form.get("csrf")):
            raise ConsoleError("the form expired; reload the page and try again")
        sessions.revoke(session, clock())
        await service.logout(moderator)
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
        return response

    # ------------------------------------------------------------------ pages

    async def queue(request: Request) -> Response:
        session, moderator = await signed_in(request)
        return page(pages.queue_page(context(request, session, moderator), await service.queue()))

    async def item(request: Request) -> Response:
        session, moderator = await signed_in(request)
        view = await service.view(moderator, int(request.path_params["item_id"]))
        ctx = context(request, session, moderator)
        return page(pages.item_page(ctx, view, service.escalation_enabled))

    async def attachment(request: Request) -> Response:
        _, moderator = await signed_in(request)
        download = await service.attachment(
            moderator, int(request.path_params["item_id"]), int(request.path_params["index"])
        )
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in download.file_name)
        return Response(
            download.content,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{safe[:100] or "attachment"}"; '
                f"filename*=UTF-8''{quote(download.file_name[:200])}"
            },
        )

    async def derivative(request: Request) -> Response:
        _, moderator = await signed_in(request)
        download = await service.derivative(moderator, int(request.path_params["item_id"]))
        return Response(download.content, media_type="image/png")

    async def audit(request: Request) -> Response:
        session, moderator = await signed_in(request)
        raw = request.query_params.get("before")
        before = int(raw) if raw is not None and raw.isdigit() and len(raw) < 19 else None
        entries = await service.audit(before)
        older = entries[-1].id if len(entries) == AUDIT_PAGE else None
        return page(pages.audit_page(context(request, session, moderator), entries, older))

    async def act(request: Request) -> Response:
        session, moderator = await signed_in(request)
        form = await _form(request)
        if not sessions.check_csrf(session, form.get("csrf")):
            raise ConsoleError("the form expired; reload the page and try again")
        item_id = int(request.path_params["item_id"])
        action = str(request.path_params["action"])
        notes = form.get("notes", "")
        if action == "dismiss":
            await service.dismiss(moderator, item_id, notes)
        elif action == "warn":
            await service.warn(moderator, item_id, notes)
        elif action == "suspend":
            await service.suspend(moderator, item_id, notes)
        elif action == "propose":
            await service.propose(moderator, item_id, notes)
        elif action == "decline":
            await service.decline(moderator, item_id, notes)
        elif action == "escalate":
            raw_type = form.get("incident_type", "")
            if raw_type not in IncidentType._value2member_map_:
                raise ConsoleError("choose an incident type from the list")
            await service.escalate(
                moderator, item_id, incident_type=IncidentType(raw_type), notes=notes,
                high_priority_reason=form.get("high_priority", "").strip() or None,
            )  # fmt: skip
        elif action == "lift":
            await service.lift_item(moderator, item_id, notes)
        else:
            raise ConsoleError(f"there is no action {action!r}")
        closing = action in ("dismiss", "warn", "suspend", "propose")
        target = "queue" if closing else f"items/{item_id}"
        return RedirectResponse(f"{base(request)}/{target}?done={action}", status_code=303)

    routes = [
        Route("/", guarded(root), methods=["GET"]),
        Route("/static/console.css", stylesheet, methods=["GET"]),
        Route("/login", login_get, methods=["GET"]),
        Route("/login", guarded(login_post), methods=["POST"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/queue", guarded(queue), methods=["GET"]),
        Route("/items/{item_id:int}", guarded(item), methods=["GET"]),
        Route("/items/{item_id:int}/attachments/{index:int}", guarded(attachment), methods=["GET"]),
        Route("/items/{item_id:int}/derivative.png", guarded(derivative), methods=["GET"]),
        Route("/items/{item_id:int}/{action:str}", guarded(act), methods=["POST"]),
        Route("/audit", guarded(audit), methods=["GET"]),
    ]
    return _SecurityHeaders(Starlette(routes=routes))


__all__ = ["MAX_FORM_BYTES", "NOTICES", "create_console"]
