"""Every bound of :mod:`overt.safety.matching`, named in one place.

Images and vouchers come from clients, tables, deltas and list files from the provider or from
the organisations: each bound below stops one of them from making the other side decode,
hash, exponentiate or keep unbounded data.
"""

from typing import Final

# ----------------------------------------------------------------------------- images

#: Largest encoded image the client hashes (the relay stores at most 10 MiB per blob).
MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024

#: Largest decoded image, in pixels (Pillow's own bomb limit is about 89 million).
MAX_IMAGE_PIXELS: Final = 50_000_000

# ----------------------------------------------------------------------------- keys and lists

#: Most locality-sensitive keys per list hash (the table grows with it).
MAX_LIST_KEYS: Final = 64

#: Most key probes per key on the client (2^flip_bits; each costs one voucher).
MAX_PROBES_PER_KEY: Final = 16

#: Most vouchers in one image bundle (the server does one exponentiation per voucher).
MAX_VOUCHERS_PER_IMAGE: Final = 256

#: Most hashes in one list version (10^7, ten times the largest list the benchmark models).
MAX_LIST_HASHES: Final = 10_000_000

#: Longest line of a list file, in characters.
MAX_LIST_LINE: Final = 4096

#: Most slots in one blinded table (3 GiB of points).
MAX_TABLE_SLOTS: Final = 100_000_000

#: Most slot writes in one delta.
MAX_DELTA_WRITES: Final = 10_000_000

# ----------------------------------------------------------------------------- accounts

#: Largest threshold the PSI supports (the manifest allows up to 1000).
MAX_THRESHOLD: Final = 1000

#: Opened images the server keeps per account and generation; past this it stops collecting
#: (and has long since reached any threshold it could).
MAX_OPENED_PER_ACCOUNT: Final = 4096

#: Devices of one account that share its matching secret (each has its own share coordinates).
MAX_DEVICES: Final = 256

#: Images one device sends in one generation of the account secret (the sequence number is the
#: low 20 bits of a share's coordinate).
MAX_IMAGES_PER_GENERATION: Final = 1 << 20

#: Largest payload carried by a matching voucher bundle, in bytes.
MAX_PAYLOAD_BYTES: Final = 64 * 1024

#: Largest encoded image bundle, in bytes.
MAX_BUNDLE_BYTES: Final = 256 * 1024
