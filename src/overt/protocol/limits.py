"""Every denial-of-service bound of the protocol core, named in one place.

A peer controls the counters in the headers it sends; each bound below is what stops a
hostile or broken peer from making this device derive, store or keep unbounded state.
"""

from typing import Final

#: Message keys a single incoming message may make us derive and store in one chain
#: (``header.n - received``, or ``header.pn - received`` for the chain being closed). A larger
#: jump is refused before any key is derived.
MAX_SKIP_PER_CHAIN: Final = 1000

#: Skipped message keys stored per session across all chains; past this the oldest go first.
MAX_SKIPPED_KEYS: Final = 2000

#: Receiving chains (peer ratchet public keys) remembered per session, for late messages and
#: for telling a duplicate from garbage. Skipped keys of a forgotten chain are dropped with it.
MAX_RECEIVER_CHAINS: Final = 5

#: Earlier sessions kept per peer device after a new one replaced them (simultaneous
#: initiation, re-installs), so that messages still in flight under the old one decrypt.
MAX_ARCHIVED_SESSIONS: Final = 40

#: One-time prekeys a device keeps unused at most (classical and ML-KEM, each).
MAX_ONE_TIME_PREKEYS: Final = 1000

#: Devices per account (also bounds fan-out of one send).
MAX_DEVICES_PER_ACCOUNT: Final = 64

#: Iterations of the safety-number hash (as Signal's numeric fingerprint).
SAFETY_NUMBER_ITERATIONS: Final = 5200

# -- groups (Sender Keys) -------------------------------------------------------------------

#: Message keys one group message may make us derive and store on a sender's chain (its
#: iteration minus the next one we expect). A larger jump is refused before any key is derived.
MAX_GROUP_FORWARD_JUMP: Final = 2000

#: Skipped message keys kept per sender chain (one sender device, one key id); past this the
#: oldest go first, and a message that needed one is refused as a duplicate.
MAX_GROUP_SKIPPED_KEYS: Final = 2000

#: Sender key states kept per member device of a group, newest first. Older ones stay for
#: messages still in flight when a new key arrives; states made before the last rekey are
#: dropped when the membership change that required it is applied.
MAX_SENDER_KEY_STATES: Final = 5

#: Accounts in one group (the wire decoder refuses more).
MAX_GROUP_MEMBERS: Final = 1024

#: Member devices in one group, over all its accounts (the wire decoder refuses more).
MAX_GROUP_DEVICES: Final = 8192
