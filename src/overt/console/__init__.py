"""overt.console — the moderation console: the queue of verified reports and metadata signals,
what each reporter revealed, the actions (dismiss, warn, suspend, escalate) and the audit trail.

* :mod:`~overt.console.service` — every operation, without HTTP: roles, actions, evidence
  re-verification, attachment downloads, CyberTipline escalation (``ConsoleService``).
* :mod:`~overt.console.app` — server-rendered HTML pages over the service (Starlette, no
  JavaScript), mounted by the relay at ``/console``; :mod:`~overt.console.pages` renders,
  :mod:`~overt.console.sessions` signs cookies and CSRF tokens.
* :mod:`~overt.console.config` — the session key, the CyberTipline endpoint, credentials and
  the provider's profile; :func:`console_app` builds service and app over a ``Storage``.
* :mod:`~overt.console.demo` — the ``make demo`` walkthrough of a report and its escalation.

The console sees only what reporters revealed and what the relay's metadata signals count; it
holds the franking key only to re-verify evidence. It never imports the client.
"""

from overt.console.config import ConsoleConfig, console_app, load_console_config
from overt.console.service import ConsoleService, EscalationSettings, Moderator, Role

__all__ = [
    "ConsoleConfig",
    "ConsoleService",
    "EscalationSettings",
    "Moderator",
    "Role",
    "console_app",
    "load_console_config",
]
