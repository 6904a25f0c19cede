"""The console's configuration: its session key, the CyberTipline endpoint and the provider's
reporting profile, read from the server's data directory, options and environment.

=======================  ==================================================================
``<data>/console.key``   32 random bytes signing session cookies (created 0600 on first start;
                         replacing it signs every moderator out)
``<data>/cybertip/``     one state file per escalation (:mod:`overt.safety.submission`)
``--cybertip-url URL``   the CyberTipline Reporting API's base URL (NCMEC's test or production
                         endpoint, or a stand-in); without it the console cannot escalate
``--cybertip-profile``   a JSON file with the provider's reporting profile (below)
``OVERT_CYBERTIP_USERNAME``, ``OVERT_CYBERTIP_PASSWORD``
                         the API credentials NCMEC issued (environment only: never on a
                         command line, where other users of the machine can read them)
=======================  ==================================================================

The profile file::

    {"reporting_person": {"email": "safety@example.org", "first_name": "A", "last_name": "B",
                          "phone": "+1 555 0100"},
     "contact_person": {"email": "legal@example.org"},          (optional)
     "service_name": "Overt", "company_template": null, "terms_of_service": null,
     "legal_url": "https://example.org/legal"}

This module knows files, options and the environment; no HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from starlette.types import ASGIApp

from overt.console.app import create_console
from overt.console.service import ConsoleService, EscalationSettings
from overt.console.sessions import SESSION_KEY_LEN, SESSION_TTL_MS, Sessions
from overt.crypto import Rng
from overt.errors import ConfigurationError
from overt.safety.cybertip import ContactPerson, CyberTipCredentials, ProviderProfile
from overt.safety.submission import DirectorySubmissionStore
from overt.storage import Storage

SESSION_KEY_FILE: Final = "console.key"
SUBMISSIONS_DIR: Final = "cybertip"
USERNAME_ENV: Final = "OVERT_CYBERTIP_USERNAME"
PASSWORD_ENV: Final = "OVERT_CYBERTIP_PASSWORD"  # noqa: S105 - the variable's name
#: Largest profile file read.
MAX_PROFILE_BYTES: Final = 64 * 1024

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """What the console needs besides the server's stores and franking key."""

    session_key: bytes
    escalation: EscalationSettings | None = None
    #: ``Secure`` cookies: None decides per request (HTTPS or not).
    secure_cookies: bool | None = None
    session_ttl_ms: int = SESSION_TTL_MS

    def __repr__(self) -> str:
        url = None if self.escalation is None else self.escalation.base_url
        return f"ConsoleConfig(cybertip_url={url!r})"


def console_app(
    config: ConsoleConfig,
    storage: Storage,
    franking_key: bytes,
    *,
    clock: Clock,
    rng: Rng,
    on_standing_change: Callable[[bytes], None] | None = None,
) -> tuple[ConsoleService, ASGIApp]:
    """The console's service and ASGI app over ``storage`` (mount the app at ``/console``)."""
    service = ConsoleService(
        franking_key=franking_key, reports=storage.reports, standing=storage.standing,
        moderators=storage.moderators, escalation=config.escalation, clock=clock, rng=rng,
        on_standing_change=on_standing_change, matching=storage.matching,
    )  # fmt: skip
    sessions = Sessions(config.session_key, rng, config.session_ttl_ms)
    app = create_console(service, sessions, clock=clock, secure_cookies=config.secure_cookies)
    return service, app


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cybertip-url`` and ``--cybertip-profile`` (for ``overt server``)."""
    parser.add_argument(
        "--cybertip-url", metavar="URL",
        help="CyberTipline Reporting API base URL the moderation console escalates to "
        f"(credentials from ${USERNAME_ENV} and ${PASSWORD_ENV})",
    )  # fmt: skip
    parser.add_argument(
        "--cybertip-profile", metavar="FILE",
        help="JSON file with the provider's CyberTipline reporting profile",
    )  # fmt: skip


def load_console_config(
    data_dir: Path,
    rng: Rng,
    *,
    cybertip_url: str | None = None,
    cybertip_profile: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConsoleConfig:
    """The console's configuration for a server whose data directory is ``data_dir``."""
    env = os.environ if environ is None else environ
    key = load_or_create_session_key(data_dir, rng)
    if cybertip_url is None:
        if cybertip_profile is not None:
            raise ConfigurationError("--cybertip-profile needs --cybertip-url")
        return ConsoleConfig(key)
    if not cybertip_url.startswith(("https://", "http://127.", "http://localhost", "http://[::1]")):
        raise ConfigurationError(
            "--cybertip-url must be https:// (plain http only on loopback, for a stand-in)"
        )
    username, password = env.get(USERNAME_ENV), env.get(PASSWORD_ENV)
    if not username or not password:
        raise ConfigurationError(
            f"--cybertip-url needs the API credentials in ${USERNAME_ENV} and ${PASSWORD_ENV}"
        )
    if cybertip_profile is None:
        raise ConfigurationError(
            "--cybertip-url needs --cybertip-profile FILE (the provider's reporting profile)"
        )
    escalation = EscalationSettings(
        base_url=cybertip_url,
        credentials=CyberTipCredentials(username, password),
        provider=load_profile(cybertip_profile),
        submissions=DirectorySubmissionStore(data_dir / SUBMISSIONS_DIR),
    )
    return ConsoleConfig(key, escalation)


def _contact(value: object, what: str) -> ContactPerson:
    if not isinstance(value, dict) or not isinstance(value.get("email"), str):
        raise ConfigurationError(f"the profile's {what} needs at least an 'email'")
    fields = {k: value.get(k) for k in ("first_name", "last_name", "phone")}
    if any(v is not None and not isinstance(v, str) for v in fields.values()):
        raise ConfigurationError(f"the profile's {what}: names and phone are strings")
    return ContactPerson(value["email"], fields["first_name"], fields["last_name"],
                         fields["phone"])  # fmt: skip


def load_profile(path: Path) -> ProviderProfile:
    """The provider's reporting profile from a JSON file (see the module docstring)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PROFILE_BYTES + 1)
        value = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the CyberTipline profile {path}: {exc}") from exc
    if len(raw) > MAX_PROFILE_BYTES or not isinstance(value, dict):
        raise ConfigurationError(f"{path} is not a CyberTipline profile (a JSON object)")
    known = {"reporting_person", "contact_person", "service_name", "company_template",
             "terms_of_service", "legal_url"}  # fmt: skip
    if set(value) - known:
        raise ConfigurationError(f"{path}: unknown fields {sorted(set(value) - known)}")
    optional = {k: value.get(k) for k in ("company_template", "terms_of_service", "legal_url")}
    if any(v is not None and not isinstance(v, str) for v in optional.values()):
        raise ConfigurationError(f"{path}: company_template, terms_of_service, legal_url are text")
    service = value.get("service_name", "Overt")
    if not isinstance(service, str) or not service:
        raise ConfigurationError(f"{path}: service_name is text")
    contact = value.get("contact_person")
    return ProviderProfile(
        reporting_person=_contact(value.get("reporting_person"), "reporting_person"),
        contact_person=None if contact is None else _contact(contact, "contact_person"),
        service_name=service,
        company_template=optional["company_template"],
        terms_of_service=optional["terms_of_service"],
        legal_url=optional["legal_url"],
    )


def load_or_create_session_key(data_dir: Path, rng: Rng) -> bytes:
    """``<data_dir>/console.key``, created (0600) from ``rng`` if absent."""
    path = data_dir / SESSION_KEY_FILE
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(rng.random_bytes(SESSION_KEY_LEN))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    path.unlink()
                raise
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode) or mode & 0o077:
            raise ConfigurationError(f"{path} must be a file only its owner reads (chmod 600)")
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read or create {path}: {exc}") from exc
    if len(key) != SESSION_KEY_LEN:
        raise ConfigurationError(f"{path} must hold {SESSION_KEY_LEN} bytes; delete it to renew")
    return key
