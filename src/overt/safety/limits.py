"""Every bound of :mod:`overt.safety`, named in one place.

A report comes from a client and a CyberTipline answer from a remote server: each bound below is
what stops either from making the provider parse, hash, decrypt or keep unbounded data. The
bounds that mirror another layer's (the body format of :mod:`overt.client.body`) say so; a test
checks that they agree.
"""

from typing import Final

# ----------------------------------------------------------------------------- reports

#: Messages one report may reveal (a reporter picks which messages of a conversation to include).
MAX_REPORTED_MESSAGES: Final = 100

#: The reporter's free-text comment, in UTF-8 bytes.
MAX_REPORT_COMMENT_BYTES: Final = 4096

#: Largest revealed attachment ciphertext (the relay server stores at most 10 MiB per blob).
MAX_ATTACHMENT_CIPHERTEXT_BYTES: Final = 10 * 1024 * 1024

#: Largest revealed attachment plaintext (sealing adds a 32-byte commitment and a 16-byte tag).
MAX_ATTACHMENT_PLAINTEXT_BYTES: Final = MAX_ATTACHMENT_CIPHERTEXT_BYTES - 48

#: Largest canonical report as a whole: decoding refuses longer input before reading a field.
MAX_REPORT_BYTES: Final = 64 * 1024 * 1024

#: How far a message's server time may lie ahead of the verifier's clock (several server nodes
#: share one franking key; their clocks differ a little).
MAX_CLOCK_SKEW_MS: Final = 5 * 60 * 1000

#: How long verified evidence is kept: one year, the preservation period of 18 U.S.C. § 2258A(h)
#: for material reported to the CyberTipline (as amended in 2024). Counsel sets the real policy.
EVIDENCE_RETENTION_MS: Final = 365 * 24 * 3600 * 1000

# ----------------------------------------------------------------------------- message body
# These mirror overt.client.body / overt.client.limits (tests/safety checks they agree).

#: Largest message text, in UTF-8 bytes.
MAX_TEXT_BYTES: Final = 64 * 1024

#: Largest attachment file name and content type, in UTF-8 bytes.
MAX_FILE_NAME_BYTES: Final = 255
MAX_CONTENT_TYPE_BYTES: Final = 127

#: Largest attachment blob id.
MAX_BLOB_ID_BYTES: Final = 64

#: Largest group update or sender key a body carries (kinds 3 and 4).
MAX_GROUP_DATA_BYTES: Final = 192 * 1024

#: Longest transparency-log origin a body's gossip names (overt.transparency.checkpoint).
MAX_GOSSIP_ORIGIN_BYTES: Final = 255

# ----------------------------------------------------------------------------- CyberTipline

#: Attempts of one API call on a 5xx answer or a connection error, the first included.
CYBERTIP_MAX_ATTEMPTS: Final = 5

#: Backoff between attempts: first delay, growth factor and ceiling, in seconds; each delay is
#: drawn uniformly from [delay / 2, delay] with the injected RNG.
CYBERTIP_BACKOFF_INITIAL_S: Final = 1.0
CYBERTIP_BACKOFF_FACTOR: Final = 2.0
CYBERTIP_BACKOFF_MAX_S: Final = 60.0

#: Timeout of one HTTP request to the CyberTipline API, in seconds (uploads can be large).
CYBERTIP_REQUEST_TIMEOUT_S: Final = 120.0

#: Largest XML answer accepted from the API (answers are a few hundred bytes).
CYBERTIP_MAX_RESPONSE_BYTES: Final = 64 * 1024

#: Files attached to one escalation.
CYBERTIP_MAX_FILES: Final = 100

#: Longest free text placed in one XML element (moderator notes, chat content).
CYBERTIP_MAX_TEXT_CHARS: Final = 100_000

#: Largest XML document or uploaded file the local stand-in accepts.
STANDIN_MAX_XML_BYTES: Final = 1024 * 1024
STANDIN_MAX_UPLOAD_BYTES: Final = 32 * 1024 * 1024
