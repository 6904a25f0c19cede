"""The deployment's configuration (DESIGN §2): its name, its witnesses and their quorum, its
access and safety policies — what the server turns into the signed manifest it logs.

The configuration is a JSON file, by default ``<data_dir>/deployment.json``, written with the
defaults (no witnesses, access policy ``none``, matching off) on first start so that an
operator can edit it::

    {
      "format": "overt-deployment",
      "version": 1,
      "deployment": "overt.local",
      "witnesses": [
        {"name": "Witness One", "url": "http://127.0.0.1:7380",
         "vkey": "overt-witness-1a2b3c4d+5e6f7a8b+BK1..."}
      ],
      "quorum": 1,
      "access": {"mode": "none"},
      "safety": {"franking": true, "matching": {"enabled": false}}
    }

``access`` and ``safety`` are exactly the manifest's members (read by
:func:`overt.transparency.manifest.access_policy_from_json` and
:func:`~overt.transparency.manifest.safety_policy_from_json`). A witness's ``name`` is what
people read, ``vkey`` its cosignature/v1 verifier key (the line ``overt witness`` prints) and
``url`` where the server sends it checkpoints; the URL is not part of the manifest. With no
witnesses the quorum is 0 and checkpoints are published as soon as the log signs them; with
witnesses it is 1 to their number.

The file is parsed strictly (unknown members, duplicates, wrong types and a bad vkey are
refused with what to fix). :func:`build_manifest` makes the :class:`Manifest` of a version
from it and the deployment's public keys.

This module knows files and JSON; no web framework, no storage, no secrets.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from overt.crypto import Ed25519PublicKey
from overt.crypto.vrf import VrfPublicKey
from overt.errors import ConfigurationError, DecodeError, LocalError
from overt.server.limits import DEPLOYMENT_FILE_MAX
from overt.transparency.manifest import (
    MAX_NAME_BYTES,
    MAX_URL_BYTES,
    MAX_WITNESSES,
    AccessPolicy,
    LogInfo,
    Manifest,
    NamedKey,
    NoAccess,
    SafetyPolicy,
    WitnessInfo,
    access_policy_from_json,
    safety_policy_from_json,
)
from overt.transparency.note import ALG_COSIGNATURE_V1, VerifierKey
from overt.wire.jcs import JsonValue, canonicalize, parse_strict

DEPLOYMENT_FILE: Final = "deployment.json"
DEPLOYMENT_FORMAT: Final = "overt-deployment"
DEPLOYMENT_VERSION: Final = 1
DEFAULT_DEPLOYMENT_NAME: Final = "overt.local"

SERVER_KEY_NAME: Final = "api"
"""The manifest's name for the server's API key (the provider key)."""


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness the server asks for cosignatures: display name, URL and verifier key."""

    name: str
    url: str
    vkey: VerifierKey

    def __post_init__(self) -> None:
        WitnessInfo(self.name, self.vkey)  # the manifest's rules for name and key type
        _check_url(self.url)

    @property
    def info(self) -> WitnessInfo:
        return WitnessInfo(self.name, self.vkey)


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_BYTES or not url.isascii():
        raise ConfigurationError(f"a witness URL is 1..{MAX_URL_BYTES} ASCII characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(f"{url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"witness URL {url!r} must be http(s)://host[:port][/path]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(
            f"witness URL {url!r} must not carry credentials, a query or a fragment"
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the manifest promises, as configured (keys come from the data directory)."""

    name: str = DEFAULT_DEPLOYMENT_NAME
    witnesses: tuple[WitnessEndpoint, ...] = ()
    quorum: int = 0
    access: AccessPolicy = field(default_factory=NoAccess)
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)

    def __post_init__(self) -> None:
        name = self.name
        if (
            not isinstance(name, str)
            or not name
            or name != name.strip()
            or not name.isprintable()
            or len(name.encode("utf-8", "replace")) > MAX_NAME_BYTES
        ):
            raise ConfigurationError(
                f"the deployment name is 1..{MAX_NAME_BYTES} bytes of printable text without "
                "leading or trailing spaces"
            )
        if not isinstance(self.witnesses, tuple) or len(self.witnesses) > MAX_WITNESSES:
            raise ConfigurationError(f"a deployment has at most {MAX_WITNESSES} witnesses")
        n = len(self.witnesses)
        low = min(1, n)
        if isinstance(self.quorum, bool) or not isinstance(self.quorum, int):
            raise ConfigurationError("the witness quorum must be an integer")
        if not low <= self.quorum <= n:
            raise ConfigurationError(
                f"the witness quorum must be in {low}..{n} for {n} witness(es)"
                + (" (0 when there are none)" if n == 0 else "")
            )
        for what, values in (
            ("names", [w.name for w in self.witnesses]),
            ("URLs", [w.url for w in self.witnesses]),
            ("keys", [w.vkey.public_key.raw for w in self.witnesses]),
        ):
            if len(set(values)) != len(values):
                raise ConfigurationError(f"two witnesses have the same {what[:-1]}")

    @property
    def witness_keys(self) -> tuple[VerifierKey, ...]:
        return tuple(w.vkey for w in self.witnesses)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "format": DEPLOYMENT_FORMAT,
            "version": DEPLOYMENT_VERSION,
            "deployment": self.name,
            "witnesses": [
                {"name": w.name, "url": w.url, "vkey": w.vkey.to_text()} for w in self.witnesses
            ],
            "quorum": self.quorum,
            "access": self.access.to_json(),
            "safety": self.safety.to_json(),
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> Deployment:
        """Read the configuration strictly; :class:`ConfigurationError` says what is wrong."""
        m = _members(
            value,
            "the deployment configuration",
            {"format", "version", "deployment", "witnesses", "quorum", "access", "safety"},
        )
        if m["format"] != DEPLOYMENT_FORMAT or m["version"] != DEPLOYMENT_VERSION:
            raise ConfigurationError(
                f'"format" must be "{DEPLOYMENT_FORMAT}" and "version" {DEPLOYMENT_VERSION}'
            )
        name = m["deployment"]
        if not isinstance(name, str):
            raise ConfigurationError('"deployment" must be a string (the deployment name)')
        witnesses = m["witnesses"]
        if not isinstance(witnesses, list):
            raise ConfigurationError('"witnesses" must be a list')
        quorum = m["quorum"]
        if not isinstance(quorum, int) or isinstance(quorum, bool):
            raise ConfigurationError('"quorum" must be an integer')
        try:
            access = access_policy_from_json(m["access"])
            safety = safety_policy_from_json(m["safety"])
        except DecodeError as e:
            raise ConfigurationError(str(e)) from None
        return cls(name, tuple(_witness(w) for w in witnesses), quorum, access, safety)


def _members(value: JsonValue, what: str, names: set[str]) -> Mapping[str, JsonValue]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{what} must be a JSON object")
    missing = names - value.keys()
    unknown = value.keys() - names
    if missing or unknown:
        problems = [f"lacks {', '.join(sorted(missing))}"] if missing else []
        problems += [f"has unknown members {', '.join(sorted(unknown))}"] if unknown else []
        raise ConfigurationError(f"{what} {' and '.join(problems)}")
    return value


def _witness(value: JsonValue) -> WitnessEndpoint:
    m = _members(value, "a witness", {"name", "url", "vkey"})
    name, url, vkey = m["name"], m["url"], m["vkey"]
    if not (isinstance(name, str) and isinstance(url, str) and isinstance(vkey, str)):
        raise ConfigurationError("a witness's name, url and vkey are strings")
    try:
        key = VerifierKey.from_text(vkey)
    except (DecodeError, LocalError) as e:
        raise ConfigurationError(f"witness {name!r}: bad vkey ({e})") from None
    if key.alg != ALG_COSIGNATURE_V1:
        raise ConfigurationError(
            f"witness {name!r}: the vkey is not a cosignature/v1 key (copy the 'witness vkey' "
            "line that `overt witness` prints)"
        )
    return WitnessEndpoint(name, url, key)


def encode_deployment(deployment: Deployment) -> bytes:
    """The file's bytes: the canonical JSON object, one member per line for people."""
    doc = deployment.to_json()
    lines = [f"  {canonicalize(k).decode()}: {canonicalize(v).decode()}" for k, v in doc.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def load_or_create_deployment(path: Path) -> Deployment:
    """The configuration in ``path``; written with the defaults (mode 0600) if absent."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_deployment(path)
    except OSError as e:
        raise ConfigurationError(f"cannot create {path}: {e}") from e
    default = Deployment()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encode_deployment(default))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            path.unlink()
        raise ConfigurationError(f"cannot write {path}: {e}") from e
    return default


def read_deployment(path: Path) -> Deployment:
    """The configuration in ``path``; :class:`ConfigurationError` says what to fix."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigurationError(f"{path} is not a regular file")
        with path.open("rb") as f:
            data = f.read(DEPLOYMENT_FILE_MAX + 1)
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from e
    try:
        doc = parse_strict(data, max_bytes=DEPLOYMENT_FILE_MAX)
        return Deployment.from_json(doc)
    except (DecodeError, ConfigurationError) as e:
        raise ConfigurationError(f"{path}: {e}; fix the file and start again") from None


def build_manifest(
    deployment: Deployment,
    *,
    version: int,
    provider_key: Ed25519PublicKey,
    log_origin: str,
    log_vkey: VerifierKey,
    vrf_key: VrfPublicKey,
) -> Manifest:
    """Version ``version`` of the deployment's manifest (unsigned); the server's API key is
    the provider key. :class:`ConfigurationError` if the result breaks a manifest rule."""
    return Manifest(
        deployment=deployment.name,
        version=version,
        provider_key=provider_key,
        server_keys=(NamedKey(SERVER_KEY_NAME, provider_key),),
        log=LogInfo(log_origin, log_vkey),
        witnesses=tuple(w.info for w in deployment.witnesses),
        witness_quorum=deployment.quorum,
        access=deployment.access,
        safety=deployment.safety,
        vrf_key=vrf_key,
    )
