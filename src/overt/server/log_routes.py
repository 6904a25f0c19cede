"""The public routes of the transparency log and the key directory (docs/api.md, "Transparency
log and key directory (v1)"), and the explorer page.

None is authenticated: anyone may read the log. Each route checks its query strictly — only
its own parameters, each once, as canonical decimal integers of at most
:data:`~overt.server.limits.LOG_POSITION_DIGITS` digits (no sign, no leading zero, no spaces,
no ``1.0``; the OpenAPI description says exactly this with a string pattern, since a JSON
schema integer would admit ``1.0``) — makes one call to
:class:`~overt.server.transparency.LogView` or :class:`~overt.server.directory.KeyDirectory`
and serializes the result. A query that does not parse is ``400 malformed``; a position or
range the published tree does not have is ``404`` (with ``Retry-After`` when it is only not
published *yet*). Nothing a reader sends can cause a 5xx.

This module knows HTTP and the API's JSON; the services know the log.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated, Any, Final

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from overt.server import models as m
from overt.server.codec import B64_PATTERN, account_id, b64_chars, b64encode
from overt.server.directory import KeyDirectory
from overt.server.errors import Malformed
from overt.server.explorer import CONTENT_SECURITY_POLICY, render
from overt.server.limits import LOG_POSITION_DIGITS, MAX_ACCOUNT_ID_LEN
from overt.server.models import error_responses as _errors
from overt.server.transparency import LogView

_DIGITS: Final = LOG_POSITION_DIGITS - 1
POSITION_PATTERN: Final = rf"^(0|[1-9][0-9]{{0,{_DIGITS}}})$"
"""A tree size or entry index in a query: canonical decimal."""
SIZE_PATTERN: Final = rf"^[1-9][0-9]{{0,{_DIGITS}}}$"
"""A tree size that must be positive."""
_DECIMAL: Final = re.compile(POSITION_PATTERN)
_NOTE_TYPE: Final = "text/plain; charset=utf-8"

_AccountPath = Annotated[
    str,
    Path(
        min_length=2,
        max_length=b64_chars(MAX_ACCOUNT_ID_LEN),
        pattern=B64_PATTERN,
        description="account id, base64url without padding",
    ),
]


def _position(description: str, *, positive: bool = False, alias: str | None = None) -> Any:
    return Query(
        pattern=SIZE_PATTERN if positive else POSITION_PATTERN,
        max_length=LOG_POSITION_DIGITS,
        alias=alias,
        description=f"{description}: a decimal integer",
    )


def strict_query(request: Request, allowed: Collection[str]) -> None:
    """Refuse unknown or repeated parameters and integers that are not canonical decimal."""
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "no query parameters"
            raise Malformed(f"unknown query parameter; this endpoint takes {takes}")
        if name in seen:
            raise Malformed(f"query parameter {name} is given twice")
        seen.add(name)
        if not _DECIMAL.fullmatch(value):
            raise Malformed(
                f"{name} must be a decimal integer of at most {LOG_POSITION_DIGITS} digits"
            )


def _text(description: str, media: str = "text/plain") -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media: {"schema": {"type": "string"}}}, "description": description}}


def add_transparency_routes(app: FastAPI, view: LogView, directory: KeyDirectory) -> None:
    """Add the log's, the key directory's and the explorer's routes to ``app``."""

    @app.get(
        "/v1/manifest",
        response_model=m.ManifestResponse,
        responses=_errors(400),
        summary="The deployment manifest in force and its log index",
        tags=["transparency"],
    )
    async def manifest(request: Request) -> m.ManifestResponse:
        strict_query(request, ())
        current = await view.manifest()
        return m.ManifestResponse(manifest=b64encode(current.signed), index=current.index)

    @app.get(
        "/v1/log/checkpoint",
        response_class=Response,
        responses={**_text("a C2SP signed note with cosignatures"), **_errors(400, 404)},
        summary="The latest published checkpoint, or the one signed at a size",
        tags=["transparency"],
    )
    async def checkpoint(
        request: Request,
        size: Annotated[str | None, _position("a tree size", positive=True)] = None,
    ) -> Response:
        strict_query(request, ("size",))
        if size is None:
            note = view.published().note.to_bytes()
        else:
            note = await view.checkpoint_at(int(size))
        return Response(note, media_type=_NOTE_TYPE)

    @app.get(
        "/v1/log/entries",
        response_model=m.EntriesResponse,
        responses=_errors(400, 404),
        summary="Entries [start, end) of the published tree (at most 1000)",
        tags=["transparency"],
    )
    async def entries(
        request: Request,
        start: Annotated[str, _position("first index")],
        end: Annotated[str, _position("index after the last")],
    ) -> m.EntriesResponse:
        strict_query(request, ("start", "end"))
        found = await view.entries(int(start), int(end))
        return m.EntriesResponse(entries=[b64encode(e) for e in found])

    @app.get(
        "/v1/log/inclusion",
        response_model=m.ProofResponse,
        responses=_errors(400, 404),
        summary="The inclusion proof of an entry in the tree of a size (RFC 9162)",
        tags=["transparency"],
    )
    async def inclusion(
        request: Request,
        index: Annotated[str, _position("the entry's index")],
        size: Annotated[str, _position("the tree size", positive=True)],
    ) -> m.ProofResponse:
        strict_query(request, ("index", "size"))
        proof = await view.inclusion(int(index), int(size))
        return m.ProofResponse(proof=[b64encode(h) for h in proof])

    @app.get(
        "/v1/log/consistency",
        response_model=m.ProofResponse,
        responses=_errors(400, 404),
        summary="The consistency proof between two tree sizes (RFC 9162)",
        tags=["transparency"],
    )
    async def consistency(
        request: Request,
        first: Annotated[str, _position("the smaller tree size", positive=True, alias="from")],
        second: Annotated[str, _position("the larger tree size", positive=True, alias="to")],
    ) -> m.ProofResponse:
        strict_query(request, ("from", "to"))
        proof = await view.consistency(int(first), int(second))
        return m.ProofResponse(proof=[b64encode(h) for h in proof])

    @app.get(
        "/v1/kt/{account}",
        response_model=m.KtLookupResponse,
        responses=_errors(400, 404),
        summary="An account's latest key-directory entry, with its VRF, opening and proof",
        tags=["transparency"],
    )
    async def kt_lookup(account: _AccountPath, request: Request) -> m.KtLookupResponse:
        strict_query(request, ())
        found = await directory.lookup(account_id(account))
        return m.KtLookupResponse(
            vrf_proof=b64encode(found.vrf_proof),
            index=found.index,
            opening=b64encode(found.opening),
            signed_device_list=b64encode(found.signed_device_list),
            proof=found.bundle.to_bytes().decode("utf-8"),
        )

    @app.get(
        "/log",
        response_class=HTMLResponse,
        responses=_text("the explorer page", "text/html"),
        summary="The public log explorer (HTML)",
        tags=["transparency"],
    )
    async def explorer() -> HTMLResponse:
        page = await view.page()
        return HTMLResponse(
            render(page),
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
