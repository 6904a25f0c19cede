"""The local store: schema migrations, round trips of every record, exactly-once message rows,
and atomicity of a received message — also across a process killed between the steps."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from overt.client import ProfileTooNew, StoreError
from overt.client import store as store_module
from overt.client.store import (
    Contact,
    Direction,
    Failure,
    Profile,
    ProfileState,
    Store,
    StoredMessage,
)
from overt.crypto import DeterministicRng
from overt.protocol import AccountIdentity, Device, SessionRecord, direct_conversation_id
from overt.protocol.device import PrekeyStock
from overt.protocol.session import start
from overt.wire import Address

NOW = 1_760_000_000_000
ALICE, BOB = b"alice", b"bob"
CID = direct_conversation_id(ALICE, BOB)


def make_profile(seed: str = "alice") -> Profile:
    rng = DeterministicRng(seed)
    dev = Device.create(ALICE, 1, rng=rng, one_time_prekeys=3, kem_one_time_prekeys=3)
    return Profile(
        ALICE, ProfileState.ACTIVE, AccountIdentity.generate(ALICE, rng), dev.identity, dev.prekeys
    )


def make_record(profile: Profile) -> SessionRecord:
    bob = Device.create(BOB, 1, rng=DeterministicRng("bob"))
    return start(None, profile.device, bob.prekey_bundle(), DeterministicRng("start"))


def make_message(mid: bytes = b"m" * 16, text: str = "hi", seq: int = 0) -> StoredMessage:
    return StoredMessage(
        CID, BOB, mid, Address(BOB, 1), Direction.INCOMING, 1, b"body:" + text.encode(), text,
        None, NOW + seq, NOW + seq, 10 + seq, NOW + seq, b"t" * 32, b"f" * 32,
    )  # fmt: skip


def test_migration_from_empty_and_reopening(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p")
    assert store.schema_version() == store_module.SCHEMA_VERSION
    assert store.profile() is None and store.message_count() == 0
    store.close()
    store = Store.open(tmp_path / "p")  # nothing to apply the second time
    assert store.schema_version() == store_module.SCHEMA_VERSION
    store.close()
    mode = stat.S_IMODE(os.stat(tmp_path / "p" / store_module.DB_FILE_NAME).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "p").st_mode) == 0o700


def test_a_profile_from_a_newer_client_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / store_module.DB_FILE_NAME)
    db.execute("INSERT INTO schema_version (version) VALUES (99)")
    db.commit()
    db.close()
    with pytest.raises(ProfileTooNew, match="upgrade this client"):
        Store.open(tmp_path)


def test_a_failing_migration_applies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store.open(tmp_path).close()
    broken = (*store_module.MIGRATIONS, ("CREATE TABLE extra (a INTEGER)", "NOT SQL AT ALL"))
    monkeypatch.setattr(store_module, "MIGRATIONS", broken)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError):
        Store.open(tmp_path)
    monkeypatch.undo()
    store = Store.open(tmp_path)
    assert store.schema_version() == len(store_module.MIGRATIONS)
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
    assert "extra" not in tables
    store.close()


def test_round_trips(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    profile = make_profile()
    store.create_profile(profile, NOW)
    with pytest.raises(StoreError):
        store.create_profile(profile, NOW)  # one profile per directory
    record = make_record(profile)
    bob1 = Address(BOB, 1)
    store.save_sessions({bob1: record}, NOW)
    bob_key = AccountIdentity.generate(BOB, DeterministicRng("bob account"))
    bob_list = bob_key.sign_device_list(1, [Device.create(BOB, 1, rng=DeterministicRng(3)).entry()])
    store.save_contact(Contact(BOB, bob_key.public_key.raw, bob_list, NOW), NOW)
    assert store.add_message(make_message(text="one", seq=1))
    assert not store.add_message(make_message(text="one again", seq=2))  # same id: ignored
    assert store.add_message(make_message(b"n" * 16, "two", seq=3))
    failure = Failure(77, Address(BOB, 2), NOW, "invalid", NOW)
    store.commit_received(mail_id=77, now_ms=NOW, failure=failure)
    store.close()

    store = Store.open(tmp_path)
    again = store.profile()
    assert again is not None and again.state is ProfileState.ACTIVE
    assert again.account_identity is not None and profile.account_identity is not None
    assert again.account_identity.public_key == profile.account_identity.public_key
    assert again.device.entry() == profile.device.entry()
    assert again.prekeys.encode() == profile.prekeys.encode()
    stored = store.session(bob1)
    assert stored is not None and stored.encode() == record.encode()
    assert store.session_addresses(BOB) == [bob1]
    contact = store.contact(BOB)
    assert contact is not None and contact.serial == 1 and contact.entry(1) is not None
    assert [m.text for m in store.history(CID, 10)] == ["one", "two"]
    assert [m.text for m in store.history(CID, 1)] == ["two"]
    [message] = store.history(CID, 1)
    assert message == make_message(b"n" * 16, "two", seq=3)
    [(cid, peer, _, last)] = store.conversations()
    assert (cid, peer) == (CID, BOB) and last is not None and last.text == "two"
    assert store.failures() == [failure]
    assert store.mail_seen(77) and not store.mail_seen(78)
    assert store.forget_seen_mail(NOW + 1) == 1 and not store.mail_seen(77)

    store.update_profile(state=ProfileState.LINKING)
    assert store.profile() is not None and store.profile().state is ProfileState.LINKING  # type: ignore[union-attr]
    store.save_contact(Contact(BOB, bob_key.public_key.raw, bob_list, NOW), NOW, [bob1])
    assert store.session(bob1) is None  # dropped with the contact update
    store.delete_profile()
    assert store.profile() is None and store.contact(BOB) is None
    store.close()


class CrashingConnection:
    """A connection that fails (or kills the process) before one statement runs."""

    def __init__(self, db: sqlite3.Connection, trigger: str, crash: bool = False) -> None:
        self._db = db
        self._trigger = trigger
        self._crash = crash

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.lstrip().startswith(self._trigger):
            if self._crash:
                os._exit(17)
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)


def _state(store: Store) -> tuple[object, ...]:
    profile = store.profile()
    assert profile is not None
    session = store.session(Address(BOB, 1))
    return (
        profile.prekeys.encode(),
        None if session is None else session.encode(),
        store.message_count(),
        store.mail_seen(5),
    )


@pytest.mark.parametrize("trigger", ["UPDATE profile", "INSERT OR IGNORE INTO messages",
                                     "INSERT OR IGNORE INTO seen_mail"])  # fmt: skip
def test_a_received_message_is_committed_all_or_nothing(tmp_path: Path, trigger: str) -> None:
    store = Store.open(tmp_path)
    profile = make_profile()
    store.create_profile(profile, NOW)
    before = _state(store)
    stock = PrekeyStock.decode(profile.prekeys.encode())
    stock.one_time.pop(next(iter(stock.one_time)))
    record = make_record(profile)
    real = store._db
    store._db = CrashingConnection(real, trigger)  # type: ignore[assignment]
    with pytest.raises(StoreError):
        store.commit_received(
            mail_id=5, now_ms=NOW, session=(Address(BOB, 1), record), prekeys=stock,
            message=make_message(),
        )  # fmt: skip
    store._db = real
    assert _state(store) == before
    # The same commit, uninterrupted, does everything.
    store.commit_received(
        mail_id=5, now_ms=NOW, session=(Address(BOB, 1), record), prekeys=stock,
        message=make_message(),
    )  # fmt: skip
    assert _state(store) == (stock.encode(), record.encode(), 1, True)
    store.close()


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from client.test_client_store import (
        BOB, NOW, CrashingConnection, make_message, make_profile, make_record)
    from overt.client.store import Store
    from overt.wire import Address

    store = Store.open(Path({profile!r}))
    profile = make_profile()
    store._db = CrashingConnection(store._db, "INSERT OR IGNORE INTO messages", crash=True)
    store.commit_received(
        mail_id=5, now_ms=NOW, session=(Address(BOB, 1), make_record(profile)),
        message=make_message())
    raise SystemExit("not reached")
    """
)


def test_a_process_killed_between_the_steps_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.create_profile(make_profile(), NOW)
    before = _state(store)
    store.close()
    tests_dir = str(Path(__file__).resolve().parent.parent)
    script = CHILD.format(tests=tests_dir, profile=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, timeout=120
    )
    assert done.returncode == 17, done.stderr.decode()
    store = Store.open(tmp_path)
    assert _state(store) == before
    store.close()
