"""Every bound and batch size of the client library, named in one place.

The protocol's own bounds (skipped keys, devices per account, one-time prekeys kept) live in
:mod:`overt.protocol.limits`; the server's in its own module. These are the client's: how much
it uploads, how long it waits, how often it retries, and how much it accepts from a server.
"""

from typing import Final

#: One-time X25519 prekeys uploaded at registration, at linking and at every refill.
ONE_TIME_PREKEY_BATCH: Final = 100

#: One-time ML-KEM-768 prekeys uploaded at registration, at linking and at every refill.
KEM_ONE_TIME_PREKEY_BATCH: Final = 100

#: Attempts of one send when the server answers ``409 stale_devices`` (each attempt refreshes
#: the device lists the server named); past this the send fails and nothing is shown as sent.
MAX_SEND_ATTEMPTS: Final = 3

#: Messages asked for per ``GET /v1/messages`` page.
FETCH_PAGE_SIZE: Final = 100

#: Pages fetched by one :meth:`Client.sync` (a bound on one call's work; the rest waits for
#: the next call, still in the mailbox).
MAX_SYNC_PAGES: Final = 50

#: Largest attachment plaintext (the server takes at most 10 MiB of ciphertext; sealing adds
#: a 32-byte commitment and a 16-byte tag).
MAX_ATTACHMENT_BYTES: Final = 10 * 1024 * 1024 - 48

#: Largest text of one message, in UTF-8 bytes.
MAX_TEXT_BYTES: Final = 64 * 1024

#: Largest group update or sender key a body carries (a membership update of a large group;
#: the server takes envelopes of up to 256 KiB).
MAX_GROUP_DATA_BYTES: Final = 192 * 1024

#: Largest attachment file name and content type, in UTF-8 bytes.
MAX_FILE_NAME_BYTES: Final = 255
MAX_CONTENT_TYPE_BYTES: Final = 127

#: How long the server ids of processed mail are remembered (so that mail delivered again
#: after a lost acknowledgement is recognised without being processed twice).
SEEN_MAIL_RETENTION_MS: Final = 30 * 24 * 3600 * 1000

#: Timeout of one HTTP request, in seconds.
REQUEST_TIMEOUT_S: Final = 30.0

#: Largest WebSocket frame accepted from the server (an envelope of 1 MiB, base64, in JSON).
MAX_PUSH_FRAME_BYTES: Final = 2 * 1024 * 1024

#: Reconnection backoff of :meth:`Client.listen`: first delay, growth factor and ceiling, in
#: seconds; each delay is drawn uniformly from [delay / 2, delay] (jitter through the RNG).
BACKOFF_INITIAL_S: Final = 0.5
BACKOFF_FACTOR: Final = 2.0
BACKOFF_MAX_S: Final = 60.0

#: Interval of :meth:`Client.listen` when the transport has no push channel (in-process).
POLL_INTERVAL_S: Final = 1.0

#: Acknowledgements of pushed mail in :meth:`Client.listen` go out in one frame when this many
#: wait (the server takes up to 1,000 ids per frame) ...
ACK_BATCH_MAX: Final = 100

#: ... or when no further mail arrives within this many seconds (real time, not the clock's).
ACK_DELAY_S: Final = 0.005

#: How often :meth:`Client.sync` runs :meth:`Client.check_log` (monitoring this account in the
#: transparency log) by itself, at most; :meth:`Client.check_log` itself runs whenever called.
LOG_CHECK_INTERVAL_S: Final = 600

#: Attempts of one key-directory lookup (``GET /v1/kt/{account}``) while the server answers
#: 404 or an older list than the one offered: a new entry is public only once a checkpoint
#: covers it (the server signs one about every second, then the witnesses cosign it).
KT_LOOKUP_ATTEMPTS: Final = 6

#: Pause between those attempts, in seconds.
KT_LOOKUP_RETRY_S: Final = 1.0

#: Entries asked for per ``GET /v1/log/entries`` page (the server's page bound).
LOG_ENTRIES_PAGE: Final = 1000

#: Gossiped checkpoints from peers kept until they can be checked (the server unreachable);
#: beyond this, the oldest are dropped.
MAX_PENDING_GOSSIP: Final = 256

#: How long a peer's checkpoint may be ahead of every checkpoint the server shows this device
#: before that is a split-view alarm (server nodes publish checkpoints a round apart).
GOSSIP_AHEAD_GRACE_S: Final = 120

#: Lawful access (:mod:`overt.client.escrow`): the DKG attempts a logged epoch key's transcript
#: is checked against (its session id binds the deployment, the epoch, the attempt and the
#: manifest's custodians; a run is retried with the next attempt number).
MAX_DKG_ATTEMPTS_CHECKED: Final = 1024

#: Most escrow epochs one ``GET /v1/epochs`` answer may list (the server lists the newest).
MAX_EPOCHS_LISTED: Final = 1000

#: How often, at most, a sender asks the server for a newer escrow epoch once the newest one
#: it knows has ended (a new key is normally learnt when monitoring reads the log).
EPOCH_REFRESH_S: Final = 600

#: Warrants tracked while sealed (their receipts counted) at most; beyond this the oldest are
#: dropped, and a notice for one of them would lack its commitment (an alarm says so).
MAX_TRACKED_WARRANTS: Final = 10_000

#: Envelopes in one ``POST /v1/messages`` (the server's bound); a group update or sender key
#: for more member devices goes out in several requests.
MAX_PAIRWISE_ENVELOPES: Final = 256

#: Group input (updates, keys, messages) kept waiting for what it needs (a sender key, an
#: update) at most; beyond it new group mail is recorded as undecryptable (``limit``).
MAX_GROUP_INBOX: Final = 1000

#: How long group input waits for its sender key or view before it is recorded as
#: undecryptable (``no_session``).
GROUP_INBOX_WAIT_MS: Final = 7 * 24 * 3600 * 1000

#: Pages of ``GET /v1/groups/{id}`` one catch-up follows at most.
MAX_GROUP_VIEW_PAGES: Final = 100
